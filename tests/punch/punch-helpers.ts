// Shared fixtures of the punch tests: deterministic randomness and app-pool members.
import type { JoinInput } from "../../src/punch/app-pool.ts";
import type { NatClassName } from "../../src/nat/class.ts";
export { seeded } from "../seeded.ts";

export const T0 = 1_700_000_000_000;


/** Deterministic byte source: a counter, so every call gives new bytes. */
export function countingBytes(start = 1): (n: number) => Uint8Array {
  let c = start;
  return (n) => Uint8Array.from({ length: n }, () => c++ & 0xff);
}

/** A 64-hex node id from a small number. */
export function idOf(n: number): string {
  return n.toString(16).padStart(64, "0");
}

let counter = 0;
export function member(opts: Partial<Omit<JoinInput, "address">> & { n?: number; ip?: string; port?: number } = {}): JoinInput {
  const n = opts.n ?? ++counter + 1000;
  return {
    nodeId: opts.nodeId ?? idOf(n),
    kind: opts.kind ?? "app:chat",
    nat: opts.nat === undefined ? "port-restricted-cone" : (opts.nat as NatClassName | null),
    spki: opts.spki ?? new Uint8Array(32).fill(n & 0xff),
    address: { ip: opts.ip ?? `198.51.100.${n % 250}`, port: opts.port ?? 40000 + (n % 20000) },
    connectionId: opts.connectionId ?? `conn-${n}`,
    portDelta: opts.portDelta,
  };
}
