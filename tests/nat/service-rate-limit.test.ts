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

  test("at the cap full buckets go first, then the first inserted", () => {
    const b = new RateBuckets(1, 1, 4);
    for (const k of ["a", "b", "c"]) b.take(k, 0); // spent until 1000
    b.take("idle", -5000); // full again by 0
    expect(b.take("d", 0)).toBe(true); // the sweep drops "idle", not "a"
    expect(b.take("a", 0)).toBe(false); // still remembered, still spent
    expect(b.take("e", 0)).toBe(true); // no bucket is full: the oldest ("a") goes
    expect(b.take("a", 0)).toBe(true); // forgotten: a fresh bucket (and "b" goes)
    expect(b.take("c", 0)).toBe(false);
    expect(b.size).toBe(4);
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

  test("expired keys go first, then the oldest marked", () => {
    const d = new DedupWindow(100, 3);
    d.seen("a", 0);
    d.seen("b", 50);
    d.seen("c", 60);
    expect(d.seen("d", 100)).toBe(false); // "a" expired at 100: it goes
    expect([d.seen("b", 100), d.seen("c", 100), d.seen("d", 100)]).toEqual([true, true, true]);
    expect(d.seen("e", 100)).toBe(false); // all live: the oldest ("b") goes
    expect([d.seen("c", 100), d.seen("b", 100)]).toEqual([true, false]);
    expect(d.size).toBe(3);
  });
});
