// Abuse-control bookkeeping of the NAT services (src/nat/rate-limit.ts): token buckets and the de-duplication
// window, on a fake clock.
import { describe, expect, test } from "bun:test";
import { DedupWindow, RateBuckets } from "../../src/nat/rate-limit.ts";

describe("RateBuckets", () => {
  test("allows a burst, then the sustained rate, per key", () => {
    const b = new RateBuckets(1, 3);
    expect([b.take("a", 0), b.take("a", 0), b.take("a", 0), b.take("a", 0)]).toEqual([true, true, true, false]);
    expect(b.take("b", 0)).toBe(true); // another key has its own bucket
    expect(b.take("a", 999)).toBe(false);
    expect(b.take("a", 1000)).toBe(true);
    expect(b.take("a", 1000)).toBe(false);
  });

  test("holds at most maxEntries keys under a flood of new ones", () => {
    const b = new RateBuckets(1, 1, 100);
    for (let i = 0; i < 1000; i++) b.take(`k${i}`, 0);
    expect(b.size).toBeLessThanOrEqual(100);
  });
});

describe("DedupWindow", () => {
  test("says seen inside the window and forgets after it", () => {
    const d = new DedupWindow(10_000);
    expect(d.seen("203.0.113.5:4000", 0)).toBe(false);
    expect(d.seen("203.0.113.5:4000", 9_999)).toBe(true);
    expect(d.seen("203.0.113.5:4001", 9_999)).toBe(false);
    expect(d.seen("203.0.113.5:4000", 10_000)).toBe(false);
  });

  test("holds at most maxEntries keys", () => {
    const d = new DedupWindow(60_000, 50);
    for (let i = 0; i < 500; i++) d.seen(`k${i}`, i);
    expect(d.size).toBeLessThanOrEqual(50);
  });
});
