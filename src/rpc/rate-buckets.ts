// Token buckets by key for the router's per-source limits. Pure: every call takes `now`; no timers.
import { BoundedMap } from "../contracts/index.ts";

export class TokenBuckets {
  // Age order = last use order (a used key moves to the young end), so eviction takes the stalest, in O(1).
  private readonly buckets: BoundedMap<string, { tokens: number; at: number }>;
  constructor(maxEntries: number) {
    this.buckets = new BoundedMap(maxEntries);
  }

  get size(): number {
    return this.buckets.size;
  }

  /** Whether `key` has a whole token at `now` for a bucket of `burst` refilled at `ratePerS`. */
  has(key: string, ratePerS: number, burst: number, now: number): boolean {
    const b = this.buckets.get(key);
    return !b || refill(b, ratePerS, burst, now) >= 1;
  }

  /** Takes one token (call has() first: a bucket may go below zero otherwise). */
  take(key: string, ratePerS: number, burst: number, now: number): void {
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = refill(b, ratePerS, burst, now);
      b.at = Math.max(b.at, now);
    } else {
      b = { tokens: burst, at: now };
    }
    b.tokens -= 1;
    this.buckets.setNewest(key, b);
  }
}

/** max(0, …): a clock that steps back must not drain or overfill a bucket. */
function refill(b: { tokens: number; at: number }, ratePerS: number, burst: number, now: number): number {
  return Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * ratePerS);
}
