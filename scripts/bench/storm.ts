// Benchmark: a reconnect storm. N app connections dial one `findings serve` at the same moment from several
// loopback source addresses (an app pool reconnecting after a node restart), each sends one whoami, and all
// are held a while longer than the server's handshake timeout, so a link that came up and was then killed by
// a late duplicate handshake is seen. `lost` = links never up + links that came up and died (closed, or
// their one request got no answer).
// Before the storm, a calm phase measures the server's CPU per new app connection (handshake with stateless
// Retry + one whoami), from /proc of the node process.
// Run: bun scripts/bench/storm.ts [--n 2000] [--sources 40] [--workers 2] [--quick] [--json]
import { QUIC_HANDSHAKE_TIMEOUT_MS } from "../../src/transport/quic/constants.ts";
import { loopbackBase, metricValue, sourceAddresses, startDialers, startNode } from "./quic-fleet.ts";
import { argValue, round2 } from "./args.ts";

export interface StormOptions {
  /** App connections dialing at once. @default 2000 (300 with quick) */
  n?: number;
  /** Loopback source addresses (one UDP socket each). @default n / 50 (under max_conns_per_ip) */
  sources?: number;
  /** Dialer processes. @default 2 */
  workers?: number;
  /** How long an app keeps trying one dial, in ms: an app pool reconnecting waits, it does not give up at
   *  the first handshake timeout. @default 30 000 */
  dialTimeoutMs?: number;
  /** Connections of the calm phase (serverCpuMsPerConnection). @default 200 (100 with quick) */
  calm?: number;
  quick?: boolean;
  /** max_quic_handshakes of the node. @default the node's default */
  handshakes?: number;
}

export interface StormResult {
  n: number;
  sources: number;
  /** Links never up + links that came up and then died (closed, or their one request got no answer). */
  lost: number;
  neverUp: number;
  died: number;
  /** Links up whose whoami got no answer (counted in `died`). */
  requestsFailed: number;
  requestsAnswered: number;
  /** Errors seen by the apps, by message (a few). */
  errors: Record<string, number>;
  /** From the first dial to the last handshake or failure, in ms. */
  stormMs: number;
  /** Server CPU (user + system) per connection during the storm, in ms. */
  stormServerCpuMsPerConnection: number;
  /** Server CPU per new app connection in the calm phase (handshake with Retry + one whoami), in ms. */
  serverCpuMsPerConnection: number;
  /** Initials the node dropped because too many handshakes were in progress and waiting. */
  droppedInitials: number;
  /** Resent Initials the node dropped because their handshake was in progress. */
  duplicateInitials: number;
  serverRssMiB: number;
  /** Dialer processes' CPU per storm connection, in ms (the client side shares this machine's cores). */
  clientCpuMsPerConnection: number;
}

export async function runStorm(opts: StormOptions = {}): Promise<StormResult> {
  const n = opts.n ?? (opts.quick ? 300 : 2000);
  const calm = opts.calm ?? (opts.quick ? 100 : 200);
  const nSources = opts.sources ?? Math.max(4, Math.ceil(n / 50));
  const base = loopbackBase();
  const host = `127.${base}.1.1`;
  const node = await startNode(host, { max_quic_connections: Math.max(4096, n + calm + 100), ...(opts.handshakes ? { max_quic_handshakes: opts.handshakes } : {}) });
  const fleet = await startDialers(opts.workers ?? 2);
  try {
    const server = { ip: host, port: node.port, spki: node.spki };
    const dialTimeoutMs = opts.dialTimeoutMs ?? 30_000;
    // Calm phase: small waves of 10 (no storm), from addresses of their own.
    const calmSources = sourceAddresses(base, 100 + nSources).slice(nSources, nSources + 4);
    let calmUp = 0;
    // The node's own background CPU (timers, mesh ticks) is measured first and taken out of the figure.
    const idle0 = node.cpuMs();
    const idleT0 = performance.now();
    await Bun.sleep(2000);
    const idleCpuPerMs = (node.cpuMs() - idle0) / (performance.now() - idleT0);
    const cpu0 = node.cpuMs();
    const calmT0 = performance.now();
    for (let done = 0; done < calm; done += 10) {
      const r = await fleet.dial({ server, sources: calmSources, count: Math.min(10, calm - done), timeoutMs: dialTimeoutMs, request: true });
      calmUp += r.up;
    }
    const serverCpuMsPerConnection = (node.cpuMs() - cpu0 - idleCpuPerMs * (performance.now() - calmT0)) / Math.max(1, calmUp);

    const before = await fleet.report();
    const cpu1 = node.cpuMs();
    const storm = await fleet.dial({ server, sources: sourceAddresses(base, nSources), count: n, timeoutMs: dialTimeoutMs, request: true });
    const stormCpu = node.cpuMs() - cpu1;
    // Held past the server's handshake timeout: a duplicate handshake that loses times out then.
    await Bun.sleep(QUIC_HANDSHAKE_TIMEOUT_MS + 3000);
    const after = await fleet.report();
    const metrics = await node.metrics().catch(() => "");
    const died = after.died - before.died;
    return {
      n,
      sources: nSources,
      lost: Math.min(n, storm.never + died + storm.requestsFailed),
      neverUp: storm.never,
      died: Math.min(n - storm.never, died + storm.requestsFailed),
      requestsFailed: storm.requestsFailed,
      requestsAnswered: storm.requestsAnswered,
      errors: storm.errors,
      stormMs: Math.round(storm.ms),
      stormServerCpuMsPerConnection: round2(stormCpu / Math.max(1, storm.up)),
      serverCpuMsPerConnection: round2(serverCpuMsPerConnection),
      droppedInitials: metricValue(metrics, "findings_udp_datagrams_dropped_total", 'reason="handshake_limit"') + metricValue(metrics, "findings_udp_datagrams_dropped_total", 'reason="handshakes_in_progress"'),
      duplicateInitials: metricValue(metrics, "findings_udp_datagrams_dropped_total", 'reason="duplicate_initial"'),
      serverRssMiB: Math.round(node.rssMiB()),
      clientCpuMsPerConnection: round2((after.cpuMs - before.cpuMs) / Math.max(1, storm.up)),
    };
  } finally {
    await fleet.stop();
    await node.stop();
  }
}



if (import.meta.main) {
  const num = (name: string) => (argValue(name) === undefined ? undefined : Number(argValue(name)));
  const t0 = performance.now();
  const r = await runStorm({ n: num("--n"), sources: num("--sources"), workers: num("--workers"), calm: num("--calm"), dialTimeoutMs: num("--dial-timeout"), handshakes: num("--handshakes"), quick: process.argv.includes("--quick") });
  if (process.argv.includes("--json")) console.log(JSON.stringify(r));
  else {
    console.log(`reconnect storm on loopback: ${r.n} app connections from ${r.sources} addresses at once, Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs`);
    console.table({
      "lost (never up + died)": r.lost,
      "never up": r.neverUp,
      "died after up (closed or request unanswered)": r.died,
      "whoami answered (ok or refused by rate)": r.requestsAnswered,
      "storm ms": r.stormMs,
      "server CPU ms/conn, storm": r.stormServerCpuMsPerConnection,
      "server CPU ms/conn, calm (Retry + whoami)": r.serverCpuMsPerConnection,
      "Initials dropped (cap)": r.droppedInitials,
      "resent Initials dropped": r.duplicateInitials,
      "server RSS MiB": r.serverRssMiB,
      "client CPU ms/conn, storm": r.clientCpuMsPerConnection,
    });
    if (Object.keys(r.errors).length > 0) console.log("errors seen by the apps:", r.errors);
    console.log(`total ${((performance.now() - t0) / 1000).toFixed(1)} s`);
  }
}
