// Time for the mesh cores: one small interface, so the state machine, the dialer and the memory links
// run on a fake clock in tests and in the network simulator. To be replaced by the Clock of
// src/contracts/ once it lands (same shape).

/** Opaque timer handle: whatever the clock's setTimeout returned. */
export type ClockHandle = unknown;

export interface Clock {
  /** Milliseconds since the epoch (Date.now() on the system clock). */
  now(): number;
  setTimeout(fn: () => void, ms: number): ClockHandle;
  clearTimeout(handle: ClockHandle): void;
}

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (handle) => clearTimeout(handle as ReturnType<typeof setTimeout> | undefined),
};
