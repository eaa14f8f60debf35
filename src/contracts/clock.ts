// Time as a component: services read the time and set timers through a Clock, so tests and the simulator
// can run them on a FakeClock (fake-clock.ts) and the node on the system clock.

declare const timerBrand: unique symbol;
/** What setTimeout/setInterval return; only good for handing back to the matching clear call. */
export type TimerHandle = { readonly [timerBrand]: true };

export interface Clock {
  /** Milliseconds since the Unix epoch (the system clock), or since the fake clock's start. */
  now(): number;
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Ignores undefined and handles that already fired or were cleared. */
  clearTimeout(handle: TimerHandle | undefined): void;
  setInterval(fn: () => void, ms: number): TimerHandle;
  clearInterval(handle: TimerHandle | undefined): void;
}

type NativeTimer = ReturnType<typeof setTimeout>;

/** The real clock: Date.now and the runtime's timers. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms) as unknown as TimerHandle,
  clearTimeout: (handle) => clearTimeout(handle as unknown as NativeTimer | undefined),
  setInterval: (fn, ms) => setInterval(fn, ms) as unknown as TimerHandle,
  clearInterval: (handle) => clearInterval(handle as unknown as NativeTimer | undefined),
};
