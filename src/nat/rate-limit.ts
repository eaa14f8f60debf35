// Abuse-control bookkeeping of the NAT services (DESIGN §6 "nobody can use the network to flood a third party"):
// token buckets per key and a de-duplication window. Pure: every call takes `now`; no timers.

/** Most rate buckets / remembered ids held at once (memory bound under a flood). */
const MAX_RATE_ENTRIES = 8192;

/** Token buckets, one per key (client IP, target IP, source node). */
export class RateBuckets {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly ratePerS: number,
    private readonly burst: number,
    private readonly maxEntries = MAX_RATE_ENTRIES,
  ) {}

  /** Takes one token for `key`; false when the bucket is empty (the caller refuses). */
  take(key: string, now: number): boolean {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.ratePerS);
      b.at = now;
    } else {
      this.evict(now);
      b = { tokens: this.burst, at: now };
      this.buckets.set(key, b);
    }
    if (b.tokens < 1) return false;
    b.tokens -= 1;
    return true;
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Drops full buckets (they carry no state); past maxEntries, the oldest goes (a flood of keys must not grow memory). */
  private evict(now: number): void {
    if (this.buckets.size < this.maxEntries) return;
    for (const [k, b] of this.buckets) {
      if (b.tokens + ((now - b.at) / 1000) * this.ratePerS >= this.burst) this.buckets.delete(k);
    }
    while (this.buckets.size >= this.maxEntries) {
      const first = this.buckets.keys().next().value;
      if (first === undefined) break;
      this.buckets.delete(first);
    }
  }
}

/** Remembers keys for `windowMs`: `seen` is true when the key was already marked inside the window. */
export class DedupWindow {
  private readonly until = new Map<string, number>();
  constructor(
    private readonly windowMs: number,
    private readonly maxEntries = MAX_RATE_ENTRIES,
  ) {}

  /** Marks `key`; returns true if it was already marked and still inside the window. */
  seen(key: string, now: number): boolean {
    const t = this.until.get(key);
    if (t !== undefined && t > now) return true;
    if (this.until.size >= this.maxEntries) {
      for (const [k, u] of this.until) if (u <= now) this.until.delete(k);
      // Still full: refuse to forget live entries, drop the oldest instead (Map keeps insertion order).
      while (this.until.size >= this.maxEntries) {
        const first = this.until.keys().next().value;
        if (first === undefined) break;
        this.until.delete(first);
      }
    }
    this.until.delete(key);
    this.until.set(key, now + this.windowMs);
    return false;
  }

  get size(): number {
    return this.until.size;
  }
}
