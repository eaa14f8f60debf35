// Benchmark: idle app connections held by one `findings serve`. Dialer processes open N QUIC connections
// (from several loopback source addresses, under max_conns_per_ip each) and keep them alive with the apps'
// keep-alive (a third of idle_timeout_s). At each step (1k, 5k, 10k by default; the node keeps the earlier
// step's connections) it reports the open rate, the node's RSS per connection, the node's CPU while every
// connection idles (% of one core, from /proc, over two keep-alive intervals), and how many were dropped.
// Run: bun scripts/bench/idle-connections.ts [--n 1000,5000,10000] [--quick] [--json]
import { DEFAULTS } from "../../src/config/index.ts";
import { loopbackBase, sourceAddresses, startDialers, startNode } from "./quic-fleet.ts";
import { argValue, round2 } from "./args.ts";

export interface IdleOptions {
  /** Steps, ascending. @default [1000, 5000, 10000] ([500] with quick) */
  steps?: number[];
  /** Dialer processes. @default 2 */
  workers?: number;
  /** Connections dialed at once while opening. @default 250 */
  batch?: number;
  /** CPU window per step, in ms. @default two keep-alive intervals (idle_timeout_s × 2/3) */
  idleWindowMs?: number;
  quick?: boolean;
}

export interface IdleStep {
  n: number;
  /** Connections opened per second during this step (handshake with Retry, no request). */
  openPerSecond: number;
  /** Node RSS now, and its growth per connection since before the first one. */
  rssMiB: number;
  rssKiBPerConnection: number;
  /** Node CPU while all connections idle, in % of one core, total and per 1,000 connections (the node's
   *  own background CPU, measured before the first connection, is taken out of the latter). */
  idleCpuPct: number;
  idleCpuPctPer1000: number;
  /** Connections that were up and closed since (should be 0), plus dials that never came up. */
  dropped: number;
  neverUp: number;
}

export interface IdleResult {
  /** One row per step, ascending n. */
  sizes: IdleStep[];
  baseRssMiB: number;
  baseIdleCpuPct: number;
  keepAliveS: number;
  wallSeconds: number;
}

export async function runIdleConnections(opts: IdleOptions = {}): Promise<IdleResult> {
  const t0 = performance.now();
  const steps = opts.steps ?? (opts.quick ? [500] : [1000, 5000, 10_000]);
  const max = Math.max(...steps);
  const batch = opts.batch ?? 250;
  const keepAliveMs = Math.floor((DEFAULTS.idle_timeout_s * 1000) / 3);
  const windowMs = opts.idleWindowMs ?? (opts.quick ? keepAliveMs : 2 * keepAliveMs);
  const base = loopbackBase();
  const host = `127.${base}.1.1`;
  const node = await startNode(host, { max_quic_connections: max + 100 });
  const fleet = await startDialers(opts.workers ?? 2);
  try {
    const server = { ip: host, port: node.port, spki: node.spki };
    // Per-IP cap (max_conns_per_ip) with room to spare: 50 connections per source address.
    const sources = sourceAddresses(base, Math.ceil(max / 50));
    const cpuPct = async (ms: number) => {
      const c0 = node.cpuMs();
      const w0 = performance.now();
      await Bun.sleep(ms);
      return ((node.cpuMs() - c0) / (performance.now() - w0)) * 100;
    };
    const baseIdleCpuPct = await cpuPct(Math.min(windowMs, 5000));
    const baseRssMiB = node.rssMiB();
    const result: IdleStep[] = [];
    let open = 0;
    let neverUp = 0;
    let prev = 0;
    for (const n of steps) {
      // This step's new connections come from addresses of their own (the earlier ones hold 50 each).
      const stepSources = sources.slice(Math.ceil(prev / 50), Math.ceil(n / 50));
      prev = n;
      const w0 = performance.now();
      const opened0 = open;
      while (open + neverUp < n) {
        const count = Math.min(batch, n - open - neverUp);
        const r = await fleet.dial({ server, sources: stepSources, count, timeoutMs: 30_000, request: false });
        open += r.up;
        neverUp += r.never;
      }
      const openPerSecond = ((open - opened0) / (performance.now() - w0)) * 1000;
      const idleCpuPct = await cpuPct(windowMs);
      const report = await fleet.report();
      const rssMiB = node.rssMiB();
      result.push({
        n,
        openPerSecond: Math.round(openPerSecond),
        rssMiB: Math.round(rssMiB),
        rssKiBPerConnection: Math.round(((rssMiB - baseRssMiB) * 1024) / Math.max(1, open)),
        idleCpuPct: round2(idleCpuPct),
        idleCpuPctPer1000: round2(((idleCpuPct - baseIdleCpuPct) * 1000) / Math.max(1, open)),
        dropped: report.died,
        neverUp,
      });
    }
    return { sizes: result, baseRssMiB: Math.round(baseRssMiB), baseIdleCpuPct: round2(baseIdleCpuPct), keepAliveS: keepAliveMs / 1000, wallSeconds: Math.round((performance.now() - t0) / 1000) };
  } finally {
    await fleet.stop();
    await node.stop();
  }
}



if (import.meta.main) {
  const n = argValue("--n");
  const r = await runIdleConnections({
    steps: n ? n.split(",").map(Number) : undefined,
    workers: argValue("--workers") ? Number(argValue("--workers")) : undefined,
    quick: process.argv.includes("--quick"),
  });
  if (process.argv.includes("--json")) console.log(JSON.stringify(r));
  else {
    console.log(`idle app connections on one node (loopback), keep-alive every ${r.keepAliveS} s, Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs`);
    console.log(`node before the first connection: RSS ${r.baseRssMiB} MiB, CPU ${r.baseIdleCpuPct} % of a core`);
    console.table(
      r.sizes.map((s) => ({
        n: s.n,
        "opened/s": s.openPerSecond,
        "RSS MiB": s.rssMiB,
        "KiB/conn": s.rssKiBPerConnection,
        "idle CPU %": s.idleCpuPct,
        "CPU % per 1k": s.idleCpuPctPer1000,
        dropped: s.dropped,
        "never up": s.neverUp,
      })),
    );
    console.log(`total ${r.wallSeconds} s`);
  }
}
