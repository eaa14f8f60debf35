// The simulator's clock (src/sim/sim-clock.ts): timers fire in due order (set order within one ms),
// cleared ones never, intervals repeat, and promise chains a timer starts settle before the next ms.
import { expect, test } from "bun:test";
import { SimClock } from "../../src/sim/sim-clock.ts";

test("fires due timers in order, skips cleared ones, repeats intervals", async () => {
  const c = new SimClock(1000);
  const seen: string[] = [];
  c.setTimeout(() => seen.push("b@20"), 20);
  c.setTimeout(() => seen.push("a@10"), 10);
  c.setTimeout(() => seen.push("a2@10"), 10);
  const gone = c.setTimeout(() => seen.push("never"), 15);
  c.clearTimeout(gone);
  const every = c.setInterval(() => seen.push(`i@${c.now() - 1000}`), 8);
  await c.advance(20);
  c.clearInterval(every);
  await c.advance(100);
  expect(seen).toEqual(["i@8", "a@10", "a2@10", "i@16", "b@20"]);
  expect(c.now()).toBe(1120);
  expect(c.pendingTimers).toBe(0);
});

test("a promise chain started by a timer settles before the next millisecond's timers", async () => {
  const c = new SimClock();
  const seen: string[] = [];
  c.setTimeout(() => void Promise.resolve().then(() => Promise.resolve()).then(() => seen.push("chain")), 1);
  c.setTimeout(() => seen.push("next"), 2);
  await c.advance(5);
  expect(seen).toEqual(["chain", "next"]);
});

test("thousands of timers, some cleared, fire in (due, set order) exactly", async () => {
  const c = new SimClock();
  let seed = 7;
  const rand = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31);
  const want: { due: number; n: number }[] = [];
  const seen: number[] = [];
  for (let n = 0; n < 5000; n++) {
    const due = Math.floor(rand() * 500);
    const h = c.setTimeout(() => seen.push(n), due);
    if (rand() < 0.3) c.clearTimeout(h);
    else want.push({ due, n });
  }
  await c.advance(600);
  expect(seen).toEqual(want.sort((a, b) => a.due - b.due || a.n - b.n).map((w) => w.n));
});
