// Token buckets by key for the router's per-source limits. Pure: every call takes `now`; no timers.

export class TokenBuckets {
  // Insertion order = last use order (a used key moves to the back), so eviction takes the stalest.
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(private readonly maxEntries: number) {}

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
      this.buckets.delete(key);
    } else {
      while (this.buckets.size >= this.maxEntries) this.buckets.delete(this.buckets.keys().next().value!);
      b = { tokens: burst, at: now };
    }
    b.tokens -= 1;
    this.buckets.set(key, b);
  }
}

/** max(0, …): a clock that steps back must not drain or overfill a bucket. */
function refill(b: { tokens: number; at: number }, ratePerS: number, burst: number, now: number): number {
  return Math.min(burst, b.tokens + (Math.max(0, now - b.at) / 1000) * ratePerS);
}
