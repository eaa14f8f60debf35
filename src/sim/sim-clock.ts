// The network simulator's virtual clock: timers in a binary heap, and all timers due at the same
// millisecond fired together before the promise chains they start are let run to rest (one macrotask
// turn). FakeClock (src/contracts) settles after every timer and scans all timers for the next one,
// which is right for unit tests and too slow for thousands of nodes with a tick each.
import type { Clock, TimerHandle } from "../contracts/index.ts";

interface Timer {
  id: number;
  due: number;
  fn: () => void;
  every: number | undefined;
}

/** One macrotask turn: every microtask chain queued before it runs to rest first. */
const turn = () => new Promise<void>((resolve) => setImmediate(resolve));

export class SimClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #heap: Timer[] = [];
  readonly #live = new Map<number, Timer>();
  /** Timers fired so far. */
  fired = 0;

  constructor(startMs = 0) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimeout(fn: () => void, ms: number): TimerHandle {
    return this.#add(fn, ms, undefined);
  }

  setInterval(fn: () => void, ms: number): TimerHandle {
    return this.#add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.#live.delete(handle as unknown as number);
  }

  clearInterval(handle: TimerHandle | undefined): void {
    this.clearTimeout(handle);
  }

  get pendingTimers(): number {
    return this.#live.size;
  }

  /** Moves the clock to now + ms, firing due timers millisecond by millisecond (in the order they
   *  were set within one millisecond) and letting their promise chains settle after each batch. */
  async advance(ms: number): Promise<void> {
    const end = this.#now + ms;
    await turn();
    for (;;) {
      const top = this.#peek();
      if (!top || top.due > end) break;
      this.#now = Math.max(this.#now, top.due);
      const t = this.#now;
      while (this.#peek()?.due === t) this.#fire(this.#pop()!);
      await turn();
    }
    this.#now = end;
  }

  #add(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const t: Timer = { id: this.#nextId++, due: this.#now + Math.max(0, Math.ceil(ms || 0)), fn, every };
    this.#live.set(t.id, t);
    this.#push(t);
    return t.id as unknown as TimerHandle;
  }

  #fire(t: Timer): void {
    if (this.#live.get(t.id) !== t) return;
    this.fired++;
    if (t.every === undefined) this.#live.delete(t.id);
    else {
      t.due += t.every;
      this.#push(t);
    }
    t.fn();
  }

  /** The earliest live timer (cleared ones are dropped on the way). */
  #peek(): Timer | undefined {
    while (this.#heap.length && this.#live.get(this.#heap[0]!.id) !== this.#heap[0]) this.#pop();
    return this.#heap[0];
  }

  #less(a: Timer, b: Timer): boolean {
    return a.due < b.due || (a.due === b.due && a.id < b.id);
  }

  // (due, id) is a total order, so the heap gives timers out in one order whatever its layout. Sifts
  // move a hole instead of swapping pairs: fewer writes and no pair arrays per step.
  #push(t: Timer): void {
    const h = this.#heap;
    let i = h.length;
    h.push(t);
    while (i > 0) {
      const p = (i - 1) >> 1;
      const parent = h[p]!;
      if (!this.#less(t, parent)) break;
      h[i] = parent;
      i = p;
    }
    h[i] = t;
  }

  #pop(): Timer | undefined {
    const h = this.#heap;
    const top = h[0];
    const last = h.pop();
    const n = h.length;
    if (n && last) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= n) break;
        const r = l + 1;
        const m = r < n && this.#less(h[r]!, h[l]!) ? r : l;
        if (!this.#less(h[m]!, last)) break;
        h[i] = h[m]!;
        i = m;
      }
      h[i] = last;
    }
    return top;
  }
}
