// A manual clock for time-based pure cores: timers fire only when the test advances time, in due order, and the
// promise chains they start run to rest before the next one fires.
export class FakeClock {
  private t = 0;
  private seq = 0;
  private readonly timers = new Map<number, { at: number; fn: () => void }>();
  private deferred: (() => void)[] = [];

  now(): number {
    return this.t;
  }

  timer(ms: number, fn: () => void): { readonly id: unknown } {
    const id = ++this.seq;
    this.timers.set(id, { at: this.t + Math.max(0, ms), fn });
    return { id };
  }

  cancel(t: { readonly id: unknown }): void {
    this.timers.delete(t.id as number);
  }

  defer(fn: () => void): void {
    this.deferred.push(fn);
  }

  /** Resolves after `ms` of this clock's time. */
  sleep(ms: number): Promise<void> {
    return new Promise((r) => this.timer(ms, r));
  }

  /** Lets every promise chain run to rest, including deferred callbacks and what they start. */
  async settle(): Promise<void> {
    for (let round = 0; round < 100; round++) {
      await new Promise((r) => setImmediate(r));
      if (this.deferred.length === 0) return;
      const run = this.deferred;
      this.deferred = [];
      for (const fn of run) fn();
    }
    throw new Error("the fake clock's deferred callbacks never came to rest");
  }

  /** Moves time forward by `ms`, firing due timers one by one (earliest first, ties in creation order). */
  async advance(ms: number): Promise<void> {
    const end = this.t + ms;
    await this.settle();
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const e of this.timers) if (e[1].at <= end && (!next || e[1].at < next[1].at)) next = e;
      if (!next) break;
      this.timers.delete(next[0]);
      this.t = next[1].at;
      next[1].fn();
      await this.settle();
    }
    this.t = end;
  }

  /** Timers still pending. */
  get pending(): number {
    return this.timers.size;
  }
}
