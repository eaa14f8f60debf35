// Per-link token bucket for searches (DESIGN §8: rate limits).
import { describe, expect, test } from "bun:test";
import { createRateLimiter } from "../../src/mesh/search-rate-limit.ts";

const T0 = 1_700_000_000_000;

describe("rate limiter", () => {
  test("allows a burst, then refuses until tokens refill at the sustained rate", () => {
    const rl = createRateLimiter({ ratePerS: 2, burst: 5 });
    for (let i = 0; i < 5; i++) expect(rl.allow("link-a", T0)).toBe(true);
    expect(rl.allow("link-a", T0)).toBe(false);
    expect(rl.allow("link-a", T0 + 499)).toBe(false);
    expect(rl.allow("link-a", T0 + 500)).toBe(true);
    expect(rl.allow("link-a", T0 + 500)).toBe(false);
  });

  test("over a long run a link gets the sustained rate plus one burst", () => {
    const rl = createRateLimiter({ ratePerS: 2, burst: 10 });
    let allowed = 0;
    for (let t = 0; t < 60_000; t += 10) if (rl.allow("x", T0 + t)) allowed++;
    expect(allowed).toBeGreaterThanOrEqual(128);
    expect(allowed).toBeLessThanOrEqual(131);
  });

  test("links have separate buckets and forget() resets one", () => {
    const rl = createRateLimiter({ ratePerS: 1, burst: 1 });
    expect(rl.allow("a", T0)).toBe(true);
    expect(rl.allow("b", T0)).toBe(true);
    expect(rl.allow("a", T0)).toBe(false);
    rl.forget("a");
    expect(rl.allow("a", T0)).toBe(true);
  });

  test("a clock that steps back neither refills nor breaks a bucket", () => {
    const rl = createRateLimiter({ ratePerS: 1, burst: 1 });
    expect(rl.allow("a", T0)).toBe(true);
    expect(rl.allow("a", T0 - 10_000)).toBe(false);
    expect(rl.allow("a", T0 + 1000)).toBe(true);
  });

  test("the number of buckets is capped, dropping idle ones first", () => {
    const rl = createRateLimiter({ ratePerS: 1, burst: 2, maxBuckets: 3 });
    rl.allow("busy", T0);
    rl.allow("busy", T0);
    for (let i = 0; i < 10; i++) rl.allow(`idle-${i}`, T0 + 5000);
    expect(rl.size).toBeLessThanOrEqual(3);
  });
});
