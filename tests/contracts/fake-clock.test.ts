// FakeClock: timers fire in due order at their due time, only when the clock is moved.
import { describe, expect, test } from "bun:test";
import { systemClock } from "../../src/contracts/clock.ts";
import { FakeClock } from "../../src/contracts/fake-clock.ts";

describe("FakeClock", () => {
  test("advance() fires due timers in due order, with now() at each due time", async () => {
    const clock = new FakeClock(1000);
    const seen: string[] = [];
    clock.setTimeout(() => seen.push(`b@${clock.now()}`), 20);
    clock.setTimeout(() => seen.push(`a@${clock.now()}`), 10);
    clock.setTimeout(() => seen.push(`c@${clock.now()}`), 20);
    clock.setTimeout(() => seen.push(`late@${clock.now()}`), 31);
    expect(await clock.advance(30)).toBe(3);
    expect(seen).toEqual(["a@1010", "b@1020", "c@1020"]);
    expect(clock.now()).toBe(1030);
    expect(clock.pendingTimers).toBe(1);
    expect(clock.nextDueAt()).toBe(1031);
  });

  test("a timer set by a callback fires in the same advance() when it falls inside the window", async () => {
    const clock = new FakeClock();
    const seen: number[] = [];
    clock.setTimeout(() => {
      seen.push(clock.now());
      clock.setTimeout(() => seen.push(clock.now()), 5);
      clock.setTimeout(() => seen.push(clock.now()), 50);
    }, 5);
    await clock.advance(10);
    expect(seen).toEqual([5, 10]);
    await clock.advance(45);
    expect(seen).toEqual([5, 10, 55]);
  });

  test("intervals repeat until cleared; cleared timers never fire", async () => {
    const clock = new FakeClock();
    const ticks: number[] = [];
    const every = clock.setInterval(() => ticks.push(clock.now()), 100);
    const never = clock.setTimeout(() => ticks.push(-1), 150);
    clock.clearTimeout(never);
    await clock.advance(350);
    expect(ticks).toEqual([100, 200, 300]);
    clock.clearInterval(every);
    clock.clearTimeout(undefined);
    await clock.advance(1000);
    expect(ticks).toEqual([100, 200, 300]);
    expect(clock.pendingTimers).toBe(0);
  });

  test("advance() refuses a negative step", async () => {
    expect(await new FakeClock().advance(-1).then(() => "resolved", (e: unknown) => e)).toBeInstanceOf(RangeError);
  });

  test("advance() lets the promise chain a timer starts run before the next timer fires", async () => {
    const clock = new FakeClock();
    const seen: string[] = [];
    clock.setTimeout(() => void Promise.resolve().then(() => Promise.resolve()).then(() => seen.push("chain of the first")), 10);
    clock.setTimeout(() => seen.push("second"), 10);
    await clock.advance(10);
    expect(seen).toEqual(["chain of the first", "second"]);
  });

  test("runUntil() lets promise chains run between timers and stops when the condition holds", async () => {
    const clock = new FakeClock();
    const sleep = (ms: number) => new Promise<void>((r) => clock.setTimeout(r, ms));
    let steps = 0;
    void (async () => {
      for (let i = 0; i < 3; i++) {
        await sleep(1000);
        steps++;
      }
    })();
    await clock.runUntil(() => steps === 3);
    expect(clock.now()).toBe(3000);
  });

  test("runUntil() rejects when no timer is left or the next one is past the limit", async () => {
    const clock = new FakeClock();
    await expect(clock.runUntil(() => false)).rejects.toThrow("no timer is left");
    clock.setTimeout(() => {}, 5000);
    await expect(clock.runUntil(() => false, { limitMs: 1000 })).rejects.toThrow("after the limit");
  });

  test("systemClock fires a real timer, and a cleared one never", async () => {
    const t0 = systemClock.now();
    let cleared = false;
    const h = systemClock.setTimeout(() => (cleared = true), 5);
    systemClock.clearTimeout(h);
    await new Promise<void>((r) => systemClock.setTimeout(r, 20));
    expect(systemClock.now() - t0).toBeGreaterThanOrEqual(15);
    expect(cleared).toBe(false);
  });
});
