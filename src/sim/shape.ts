// Per-pair link shape of the simulated network, drawn from a seeded distribution: one-way latency,
// jitter, loss and bandwidth for every pair of IPs, the same both ways and on every run with the same
// seed. Links are streams (WSS over TCP): a lost segment costs a retransmission, not the message.
import { seeded } from "../contracts/index.ts";

export { seeded };

export interface ShapeOptions {
  seed: number;
  /** One-way latency range, ms (log-uniform). @default [5, 150] */
  latencyMs?: [number, number];
  /** Jitter as a fraction of the latency. @default 0.2 */
  jitter?: number;
  /** Loss probability range per message. @default [0, 0.02] */
  loss?: [number, number];
  /** Bandwidth range, bytes per ms (1 Mbit/s = 125). @default [125, 12_500] */
  bandwidth?: [number, number];
}

export interface PairShape {
  latencyMs: number;
  loss: number;
  bytesPerMs: number;
}

/** 32-bit FNV-1a of a string, mixed with the seed. */
function hash(s: string, seed: number): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

export function createShape(o: ShapeOptions) {
  const [lo, hi] = o.latencyMs ?? [5, 150];
  const jitter = o.jitter ?? 0.2;
  const [l0, l1] = o.loss ?? [0, 0.02];
  const [b0, b1] = o.bandwidth ?? [125, 12_500];
  const rand = seeded(o.seed ^ 0x5eed);

  /** Drawn again from the pair's hash each time (a few arithmetic operations): a cache of every pair a
   *  10,000-node run touches would hold millions of entries. */
  function pair(a: string, b: string): PairShape {
    const r = seeded(hash(a < b ? `${a}|${b}` : `${b}|${a}`, o.seed));
    return { latencyMs: lo * Math.pow(hi / lo, r()), loss: l0 + (l1 - l0) * r(), bytesPerMs: b0 * Math.pow(b1 / b0, r()) };
  }

  return {
    pair,
    rttMs: (a: string, b: string) => Math.round(2 * pair(a, b).latencyMs),
    delayMs(a: string, b: string, bytes: number): number {
      const p = pair(a, b);
      let ms = p.latencyMs * (1 + jitter * (2 * rand() - 1)) + bytes / p.bytesPerMs;
      // A lost segment is sent again after a retransmission timeout (~3 round trips, at least 200 ms).
      if (rand() < p.loss) ms += Math.max(200, 6 * p.latencyMs);
      return Math.max(1, Math.round(ms));
    },
  };
}
