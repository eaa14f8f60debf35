// A Clock that moves only when told: advance(ms) and runUntil() fire due timers in order and let the
// promise chains each one starts come to rest before the next. For unit tests of time-based cores and
// for the network simulator.
import type { Clock, TimerHandle } from "./clock.ts";

interface FakeTimer {
  readonly id: number;
  due: number;
  readonly fn: () => void;
  /** Period of an interval; undefined for a one-shot timer. */
  readonly every: number | undefined;
}

export interface RunUntilOptions {
  /** Fake milliseconds runUntil may move the clock forward before it gives up. @default 3_600_000 (1 h) */
  limitMs?: number;
}

/** Yields to the event loop a few times, so promise chains (and what they hand to setImmediate, as memory
 *  links do) run to rest. No real time passes beyond that. */
export async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

export class FakeClock implements Clock {
  #now: number;
  #nextId = 1;
  readonly #timers = new Map<number, FakeTimer>();

  /** @param startMs what now() returns before the first advance. @default 0 */
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
    // A zero period would fire forever within one instant; the runtime also waits at least 1 ms.
    return this.#add(fn, ms, Math.max(1, ms));
  }

  clearTimeout(handle: TimerHandle | undefined): void {
    if (handle !== undefined) this.#timers.delete(handle as unknown as number);
  }

  clearInterval(handle: TimerHandle | undefined): void {
    this.clearTimeout(handle);
  }

  /** Timers and intervals not yet fired or cleared. */
  get pendingTimers(): number {
    return this.#timers.size;
  }

  /** When the next timer is due, or undefined when none is set. */
  nextDueAt(): number | undefined {
    return this.#next()?.due;
  }

  /**
   * Moves the clock `ms` forward, firing every timer that falls due on the way in due order (equal times in
   * the order they were set), with now() at each timer's due time, and settling after each. Timers set by
   * a callback fire too when they fall inside the window. Resolves to how many callbacks ran.
   */
  async advance(ms: number): Promise<number> {
    if (!(ms >= 0)) throw new RangeError(`Cannot advance the clock: ms must be 0 or more: current value is ${ms}`);
    const end = this.#now + ms;
    let fired = 0;
    await settle();
    for (let t = this.#next(); t !== undefined && t.due <= end; t = this.#next()) {
      this.#fire(t);
      fired++;
      await settle();
    }
    this.#now = end;
    return fired;
  }

  /**
   * Fires timers one at a time, letting promises settle after each, until `done()` is true. Rejects when no
   * timer is left or the next one is more than `limitMs` after the start, with `done()` still false.
   */
  async runUntil(done: () => boolean, opts: RunUntilOptions = {}): Promise<void> {
    const limit = this.#now + (opts.limitMs ?? 3_600_000);
    await settle();
    while (!done()) {
      const t = this.#next();
      if (t === undefined) throw new Error(`Cannot run the fake clock further: no timer is left at ${this.#now} ms`);
      if (t.due > limit) throw new Error(`Cannot run the fake clock further: the next timer is due after the limit of ${opts.limitMs ?? 3_600_000} ms`);
      this.#fire(t);
      await settle();
    }
  }

  #add(fn: () => void, ms: number, every: number | undefined): TimerHandle {
    const id = this.#nextId++;
    this.#timers.set(id, { id, due: this.#now + Math.max(0, ms || 0), fn, every });
    return id as unknown as TimerHandle;
  }

  // Map order is creation order, so the first of equal due times is the one set first.
  #next(): FakeTimer | undefined {
    let best: FakeTimer | undefined;
    for (const t of this.#timers.values()) if (best === undefined || t.due < best.due) best = t;
    return best;
  }

  #fire(t: FakeTimer): void {
    this.#now = Math.max(this.#now, t.due);
    if (t.every === undefined) this.#timers.delete(t.id);
    else {
      // Re-inserted so that it queues behind timers set for the same instant before it refired.
      this.#timers.delete(t.id);
      t.due += t.every;
      this.#timers.set(t.id, t);
    }
    t.fn();
  }
}
