// Abuse-control bookkeeping of the NAT services (DESIGN §6 "nobody can use the network to flood a third party"):
// token buckets per key and a de-duplication window. Pure: every call takes `now`; no timers.
import { BoundedMap } from "../contracts/index.ts";

/** Most rate buckets / remembered ids held at once (memory bound under a flood). */
const MAX_RATE_ENTRIES = 8192;

/** Token buckets, one per key (client IP, target IP, source node). */
export class RateBuckets {
  /** Insertion order: the first inserted goes first at the cap. */
  private readonly buckets: BoundedMap<string, { tokens: number; at: number }>;
  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly maxEntries = MAX_RATE_ENTRIES,
  ) {
    this.buckets = new BoundedMap(maxEntries);
  }

  /** Takes one token for `key`; false when the bucket is empty (the caller refuses). */
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS);
      b.at = now;
    } else {
      this.sweep(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b); // past maxEntries, the oldest goes (a flood of keys must not grow memory)
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** At the cap, drops full buckets (they carry no state), at most once per quarter of the cap in new keys. */
  private sweep(now: number): void {
    this.buckets.sweepIdleAtCap((b) => b.tokens + ((now - b.at) / 1000) * this.ratePerS >= this.burst);
  }
}

/** Remembers keys for `windowMs`: `seen` is true when the key was already marked inside the window. */
export class DedupWindow {
  /** Key → until; age order is marking order, so (on a clock that does not step back) expired keys sit first. */
  private readonly until: BoundedMap<string, number>;
  constructor(
    private readonly windowMs: number,
    maxEntries = MAX_RATE_ENTRIES,
  ) {
    this.until = new BoundedMap(maxEntries);
  }

  /** Marks `key`; returns true if it was already marked and still inside the window. */
  seen(key: string, now: number): boolean {
    const t = this.until.get(key);
    if (t !== undefined && t > now) return true;
    this.until.dropOldestWhile((u) => u <= now);
    // Still full: live entries are not refused, the oldest is forgotten instead.
    this.until.setNewest(key, now + this.windowMs);
    return false;
  }

  get size(): number {
    return this.until.size;
  }
}
