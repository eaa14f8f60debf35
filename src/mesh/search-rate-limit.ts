// Per-link token bucket for mesh searches and other requests a peer can repeat (DESIGN §8: rate limits).
import { BoundedMap } from "../contracts/index.ts";

/** Searches a link may send: a sustained 2 per second with bursts of 10. */
const DEFAULT_SEARCH_RATE_PER_S = 2;
const DEFAULT_SEARCH_BURST = 10;
/** Most rate buckets held (one per link or app address). */
const MAX_RATE_BUCKETS = 4096;

export interface RateLimiterInit {
  /** Sustained requests per second. @default DEFAULT_SEARCH_RATE_PER_S (2) */
  ratePerS?: number;
  /** Bucket size: requests allowed at once after a quiet spell. @default DEFAULT_SEARCH_BURST (10) */
  burst?: number;
  /** Most buckets held (links, or app addresses). @default MAX_RATE_BUCKETS */
  maxBuckets?: number;
}

export interface RateLimiter {
  readonly size: number;
  /** Takes one token from `linkId`'s bucket; false when it is empty (answer RATE_LIMITED). */
  allow(linkId: string, now: number): boolean;
  /** Drops the bucket of a closed link. */
  forget(linkId: string): void;
}

export function createRateLimiter(init: RateLimiterInit = {}): RateLimiter {
  const ratePerMs = (init.ratePerS ?? DEFAULT_SEARCH_RATE_PER_S) / 1000;
  const burst = init.burst ?? DEFAULT_SEARCH_BURST;
  const maxBuckets = init.maxBuckets ?? MAX_RATE_BUCKETS;
  // Insertion order: at the cap the first inserted goes first, in O(1).
  const buckets = new BoundedMap<string, { tokens: number; at: number }>(maxBuckets);

  const refill = (b: { tokens: number; at: number }, now: number) => {
    // max(0, …): a clock that steps back must not drain or overfill a bucket.
    b.tokens = Math.min(burst, b.tokens + Math.max(0, now - b.at) * ratePerMs);
    b.at = Math.max(b.at, now);
  };

  return {
    get size() {
      return buckets.size;
    },
    allow(linkId, now) {
      let b = buckets.get(linkId);
      if (!b) {
        // Full buckets belong to idle keys and carry no state worth keeping; else the oldest goes (set).
        buckets.sweepIdleAtCap((other) => (refill(other, now), other.tokens >= burst));
        b = { tokens: burst, at: now };
        buckets.set(linkId, b);
      }
      refill(b, now);
      if (b.tokens < 1) return false;
      b.tokens -= 1;
      return true;
    },
    forget(linkId) {
      buckets.delete(linkId);
    },
  };
}
