// Benchmark: how fast N real `findings serve` processes on loopback form a mesh, how much memory a node takes, and how many mesh messages a node handles per minute at steady state (DESIGN §5).
//
//   bun scripts/bench/mesh-convergence.ts [--sizes 10,25,50] [--out 3] [--in 6] [--switch-s 30] [--steady-s 60] [--timeout-s 180]
//
// Per size: node 1 starts with --public, every other node with one --peer (a random node started
// before it, address only), in batches of 5 so process start-up does not starve the 2-core machine.
// Then /status is polled every 500 ms:
//   mesh     every node has been seen serving with `--out` outgoing links (the configured size)
//   pools    every node has been seen with ≥ 90 % of the other nodes in its candidate pool
// Times are measured from the moment all processes printed their ready line (and from the first
// spawn). At steady state the message counters (requests sent + received, all mesh methods; each
// request has one answer, not counted again) are sampled over `--steady-s`, and RSS is read from
// /proc/<pid>/status. Nodes live on a loopback /24 of the run's own (127.A.B.x), one free port.
import { parseArgs } from "node:util";
import { readFileSync } from "node:fs";
import { Network, statuses, type NodeProcess, type NodeStatus } from "../../tests/multinode/harness.ts";

const { values } = parseArgs({
  options: {
    sizes: { type: "string", default: "10,25,50" },
    out: { type: "string", default: "3" },
    in: { type: "string", default: "6" },
    "switch-s": { type: "string", default: "30" },
    "steady-s": { type: "string", default: "60" },
    "timeout-s": { type: "string", default: "180" },
  },
});
const SIZES = values.sizes!.split(",").map(Number);
const MESH_OUT = Number(values.out);
const MESH_IN = Number(values.in);
const SWITCH_S = Number(values["switch-s"]);
const STEADY_MS = Number(values["steady-s"]) * 1000;
const TIMEOUT_MS = Number(values["timeout-s"]) * 1000;
/** Processes started at once: each spends ~0.3 s of CPU starting (Bun, certificate, sockets). */
const START_BATCH = 5;
const POLL_MS = 500;

interface Row {
  nodes: number;
  readyS: number;
  meshS: number | null;
  poolsS: number | null;
  rssMeanMb: number;
  rssMaxMb: number;
  msgsPerNodeMin: number;
  msgsPerNodeMinMax: number;
  switchesPerNodeMin: number;
  candidatesMean: number;
  bans: number;
}


function rssMb(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

const messages = (s: NodeStatus) => Object.values(s.mesh.counters.messagesIn).reduce((a, b) => a + b, 0) + Object.values(s.mesh.counters.messagesOut).reduce((a, b) => a + b, 0);

async function runSize(n: number): Promise<Row> {
  const net = await Network.create(`bench-${n}`);
  const host = (i: number) => net.host(i + 1);
  const config = { mesh_out: MESH_OUT, mesh_in: MESH_IN, mesh_switch_s: SWITCH_S, max_links_per_ip: 1024, log_level: "warn" };
  try {
    const t0 = performance.now();
    const nodes: NodeProcess[] = [await net.start({ name: "b1", host: host(0), public: true, config })];
    for (let i = 1; i < n; i += START_BATCH) {
      const batch = Array.from({ length: Math.min(START_BATCH, n - i) }, (_, k) => i + k);
      const started = await Promise.all(
        batch.map((j) => net.start({ name: `b${j + 1}`, host: host(j), peers: [net.address(Math.floor(Math.random() * nodes.length) + 1)], config, readyTimeoutMs: 60_000 })),
      );
      nodes.push(...started);
    }
    const tReady = performance.now();
    process.stderr.write(`  ${n} nodes ready in ${((tReady - t0) / 1000).toFixed(1)} s\n`);

    // A switch takes a link down for the moment of a redial, so with many nodes some node is always
    // mid-switch: "meshed" is when the last node first reached its full outgoing links.
    let meshAt: number | null = null;
    let poolsAt: number | null = null;
    const full = new Set<number>();
    const pooled = new Set<number>();
    const wantCandidates = Math.ceil(0.9 * (n - 1));
    while (performance.now() - tReady < TIMEOUT_MS && (meshAt === null || poolsAt === null)) {
      const all = await statuses(nodes);
      all.forEach((s, i) => {
        if (s && s.mesh.serving && s.mesh.mesh.out === MESH_OUT) full.add(i);
        if (s && s.mesh.candidates.length >= wantCandidates) pooled.add(i);
      });
      if (meshAt === null && full.size === n) meshAt = performance.now();
      if (poolsAt === null && pooled.size === n) poolsAt = performance.now();
      await Bun.sleep(POLL_MS);
    }
    if (meshAt === null) process.stderr.write(`  mesh not converged within ${TIMEOUT_MS / 1000} s (${n - full.size} nodes never full)\n`);

    // Steady state: the mesh is formed; count what a node sends and receives per minute.
    const before = await statuses(nodes);
    const tS = performance.now();
    await Bun.sleep(STEADY_MS);
    const after = await statuses(nodes);
    const minutes = (performance.now() - tS) / 60_000;
    const perNode = after.map((s, i) => (s && before[i] ? (messages(s) - messages(before[i]!)) / minutes : NaN)).filter(Number.isFinite);
    const switches = after.map((s, i) => (s && before[i] ? ((s.mesh.counters.events.switches ?? 0) - (before[i]!.mesh.counters.events.switches ?? 0)) / minutes : NaN)).filter(Number.isFinite);
    const rss = nodes.map((node) => rssMb(node.proc.pid)).filter(Number.isFinite);
    const live = after.filter((s): s is NodeStatus => s !== null);
    return {
      nodes: n,
      readyS: (tReady - t0) / 1000,
      meshS: meshAt === null ? null : (meshAt - tReady) / 1000,
      poolsS: poolsAt === null ? null : (poolsAt - tReady) / 1000,
      rssMeanMb: mean(rss),
      rssMaxMb: Math.max(...rss),
      msgsPerNodeMin: mean(perNode),
      msgsPerNodeMinMax: Math.max(...perNode),
      switchesPerNodeMin: mean(switches),
      candidatesMean: mean(live.map((s) => s.mesh.candidates.length)),
      bans: live.reduce((a, s) => a + s.mesh.bans.length, 0),
    };
  } finally {
    await Promise.all(net.nodes.filter((x) => !x.exited).map((x) => x.stop()));
    await net.stopAll();
  }
}

function mean(xs: number[]): number {
  return xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN;
}

const rows: Row[] = [];
process.stderr.write(`mesh ${MESH_OUT} out + ${MESH_IN} in, switch every ${SWITCH_S} s, steady-state window ${STEADY_MS / 1000} s\n`);
for (const n of SIZES) {
  process.stderr.write(`${n} nodes…\n`);
  rows.push(await runSize(n));
}

const fmt = (x: number | null, d = 1) => (x === null || !Number.isFinite(x) ? "—" : x.toFixed(d));
const header = ["nodes", "all ready s", "mesh s", "pools ≥90% s", "RSS mean MB", "RSS max MB", "msgs/node/min", "max", "switches/node/min", "candidates", "bans"];
const lines = rows.map((r) => [String(r.nodes), fmt(r.readyS), fmt(r.meshS), fmt(r.poolsS), fmt(r.rssMeanMb), fmt(r.rssMaxMb), fmt(r.msgsPerNodeMin), fmt(r.msgsPerNodeMinMax), fmt(r.switchesPerNodeMin, 2), fmt(r.candidatesMean), String(r.bans)]);
const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
const row = (cells: string[]) => "| " + cells.map((c, i) => c.padStart(widths[i]!)).join(" | ") + " |";
console.log(row(header));
console.log("|" + widths.map((w) => "-".repeat(w + 2)).join("|") + "|");
for (const l of lines) console.log(row(l));
