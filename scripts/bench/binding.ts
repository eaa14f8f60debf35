// Benchmark: our RFC 5389 Binding responder (Bun.udpSocket and node:dgram) against coturn, one core each, on loopback.
//
//   bun scripts/bench/binding.ts [--seconds 3] [--rounds 3] [--sockets 4] [--window 32] [--only node,bun,batched,dgram,coturn] [--json]
//
// Each server runs in its own process pinned to CPU 0 (taskset), coturn with `-m 0` (listener and relay in
// one thread); the load generator runs in another process pinned to CPU 1, so neither steals the other's core.
// The generator is closed-loop: `--window` requests in flight on each of `--sockets` sockets, a new request
// for every answer (sent in one sendMany per event-loop turn), and a resend for any request unanswered after
// LOST_AFTER_MS. Per server it reports answers per second as the generator saw them (median and best of
// `--rounds` interleaved rounds: on a shared VM noise only ever slows a round down), and answers per second
// of the server's own CPU time (/proc/PID/stat), which stays comparable when the JS generator, not the
// server, is the bottleneck. The default 4 × 32 in flight stays under Bun.udpSocket's 208 KiB default receive
// buffer; at 4 × 64 bursts overflow it and lost requests, not the server, set the pace.
//
// The standalone responders and the load generator run from scripts/bench/binding-roles.ts.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { encodeBindingRequest } from "../../src/stun/binding.ts";
import { HOST, WARMUP_MS } from "./binding-roles.ts";

/** How long a server may take to answer its first Binding Request before the run fails. */
const READY_TIMEOUT_MS = 5_000;
/** Linux USER_HZ: the unit of utime/stime in /proc/PID/stat. */
const CLOCK_TICKS_PER_S = 100;
const ROLES = join(import.meta.dir, "binding-roles.ts");

const ignore = () => {};

const args = process.argv.slice(2);
const flag = (name: string, fallback: string) => {
  const at = args.indexOf(`--${name}`);
  return at >= 0 && at + 1 < args.length ? args[at + 1] : fallback;
};

// ---------------------------------------------------------------------------------------------
// Orchestration

interface Target {
  key: string;
  name: string;
  start(dir: string): Promise<{ child: Bun.Subprocess; port: number }>;
}

export interface Row {
  name: string;
  perSecond: number;
  cpuShare: number;
  generatorCpuShare: number;
  perCpuSecond: number;
  lostShare: number;
}

function pinned(cpu: number, argv: string[]): string[] {
  return Bun.which("taskset") !== null && navigator.hardwareConcurrency >= 2 ? ["taskset", "-c", String(cpu), ...argv] : argv;
}

/** Lines of a child's stdout, as they come. */
async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const decoder = new TextDecoder();
  let pending = "";
  for await (const chunk of stream) {
    pending += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = pending.indexOf("\n")) >= 0) {
      yield pending.slice(0, nl);
      pending = pending.slice(nl + 1);
    }
  }
  if (pending.length > 0) yield pending;
}

async function startOurs(role: string): Promise<{ child: Bun.Subprocess; port: number }> {
  const child = Bun.spawn(pinned(0, [process.execPath, ROLES, "--role", role]), { stdout: "pipe", stderr: "inherit" });
  for await (const line of lines(child.stdout)) {
    const match = /^ready (\d+)$/.exec(line);
    if (match !== null) return { child, port: Number(match[1]) };
  }
  throw new Error(`${role} exited before it was ready`);
}

/** The real node: `findings serve` from source, answering Binding on its shared QUIC/raw UDP socket. */
async function startNode(dir: string): Promise<{ child: Bun.Subprocess; port: number }> {
  const port = await freeUdpPort();
  const main = join(import.meta.dir, "..", "..", "src", "main.ts");
  const child = Bun.spawn(pinned(0, [
    process.execPath, main, "serve", "--json", "--public", "--host", HOST, "--port", String(port),
    "--admin", "", "--home", join(dir, "node-home"), "--log-level", "warn",
    // One generator host: lift the per-source Binding budget out of reach, so the bench measures the answer
    // path (budget check included), not the budget's drops.
  ]), { stdout: "pipe", stderr: "inherit", env: { ...process.env, FINDINGS_STUN_RATE_PER_S: "1000000", FINDINGS_STUN_BURST: "1000000" } });
  for await (const line of lines(child.stdout)) if (line.includes('"ready"')) break;
  await waitForAnswer(port);
  return { child, port };
}

async function freeUdpPort(): Promise<number> {
  const probe = await Bun.udpSocket({ hostname: HOST });
  const port = probe.port;
  probe.close();
  return port;
}

async function startCoturn(dir: string): Promise<{ child: Bun.Subprocess; port: number }> {
  if (Bun.which("turnserver") === null) throw new Error("turnserver is not installed: run apt-get install -y coturn");
  const port = await freeUdpPort();
  const child = Bun.spawn(pinned(0, [
    "turnserver", "-n", "--stun-only", "--no-tcp", "--no-tls", "--no-dtls", "--no-cli", "--no-rfc5780",
    "--no-software-attribute", "--listening-ip", HOST, "--listening-port", String(port), "--relay-threads", "0",
    "--log-file", join(dir, "turnserver.log"), "--simple-log", "--no-stdout-log",
    "--pidfile", join(dir, "turnserver.pid"), "--userdb", join(dir, "turndb"),
  ]), { stdout: "ignore", stderr: "ignore" });
  await waitForAnswer(port);
  return { child, port };
}

/** Sends Binding Requests until one is answered: the server is up. */
async function waitForAnswer(port: number): Promise<void> {
  let answered = false;
  const socket = await Bun.udpSocket({ hostname: HOST, socket: { data: () => void (answered = true), error: ignore } });
  const request = encodeBindingRequest(crypto.getRandomValues(new Uint8Array(12)));
  const deadline = performance.now() + READY_TIMEOUT_MS;
  while (!answered && performance.now() < deadline) {
    socket.send(request, port, HOST);
    await Bun.sleep(50);
  }
  socket.close();
  if (!answered) throw new Error(`no answer on port ${port} within ${READY_TIMEOUT_MS} ms`);
}

/** CPU seconds (user + system, all threads) a process has used so far. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" "); // the name may hold spaces
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S; // utime, stime (fields 14, 15)
}

async function measure(target: Target, dir: string, seconds: number, sockets: number, window: number): Promise<Row> {
  const { child, port } = await target.start(dir);
  try {
    const generator = Bun.spawn(pinned(1, [
      process.execPath, ROLES, "--role", "load", "--port", String(port),
      "--seconds", String(seconds), "--sockets", String(sockets), "--window", String(window),
    ]), { stdout: "pipe", stderr: "inherit" });
    let cpuBefore = 0;
    let result: { answered: number; lost: number; elapsedS: number; cpuS: number } | null = null;
    for await (const line of lines(generator.stdout)) {
      if (line === "measuring") cpuBefore = cpuSeconds(child.pid);
      else if (line.startsWith("{")) {
        result = JSON.parse(line);
        break;
      }
    }
    const cpuUsed = cpuSeconds(child.pid) - cpuBefore;
    await generator.exited;
    if (result === null) throw new Error(`load generator for ${target.name} printed no result`);
    return {
      name: target.name,
      perSecond: result.answered / result.elapsedS,
      cpuShare: cpuUsed / result.elapsedS,
      generatorCpuShare: result.cpuS / result.elapsedS,
      perCpuSecond: cpuUsed > 0 ? result.answered / cpuUsed : NaN,
      lostShare: result.lost / Math.max(1, result.answered + result.lost),
    };
  } finally {
    child.kill();
    await child.exited;
  }
}

/** The row whose answers/s is the median of the rounds (so its other columns come from the same run). */
function medianRow(rows: Row[]): Row {
  const sorted = [...rows].sort((a, b) => a.perSecond - b.perSecond);
  return sorted[Math.floor((sorted.length - 1) / 2)];
}

export interface BindingOptions {
  /** Counted seconds per round and server. @default 3 */
  seconds?: number;
  /** Interleaved rounds. @default 3 */
  rounds?: number;
  sockets?: number;
  window?: number;
  /** Servers to measure, of node, bun, batched, dgram, coturn. @default all */
  only?: string[];
  /** Prints the header and progress to the console. @default false */
  log?: boolean;
}

export interface BindingServerFigures {
  key: string;
  name: string;
  /** Median round: answers/s as the generator saw them, and its other columns. */
  median: Row;
  /** Best round's answers/s. */
  bestPerSecond: number;
  rounds: Row[];
}

export interface BindingResult {
  servers: BindingServerFigures[];
  coturnVersion: string;
  /** `findings serve` over coturn, median answers/s of each (null without both). */
  bindingRatio: number | null;
  /** The same, best round of each. */
  bindingRatioBest: number | null;
  /** The same, answers per second of the server's own CPU time (steadier on a busy machine). */
  bindingRatioPerCpu: number | null;
}

/** Runs the servers in interleaved rounds against the same generator and returns each one's figures. */
export async function runBinding(opts: BindingOptions = {}): Promise<BindingResult> {
  const seconds = Math.min(10, opts.seconds ?? 3);
  const rounds = Math.min(5, opts.rounds ?? 3);
  const sockets = opts.sockets ?? 4;
  const window = opts.window ?? 32;
  const only = opts.only ?? ["node", "bun", "batched", "dgram", "coturn"];
  const coturnVersion = Bun.which("turnserver") === null ? "" : Bun.spawnSync(["turnserver", "--version"]).stdout.toString().trim().split("\n")[0] || "?";
  const targets = [
    { key: "bun", name: "findings, Bun.udpSocket", start: () => startOurs("serve-bun") },
    { key: "batched", name: "findings, Bun sendMany", start: () => startOurs("serve-bun-batched") },
    { key: "dgram", name: "findings, node:dgram", start: () => startOurs("serve-dgram") },
    { key: "node", name: "findings serve (shared)", start: startNode },
    { key: "coturn", name: `coturn ${coturnVersion} (-m 0)`, start: startCoturn },
  ].filter((t) => only.includes(t.key));
  const dir = mkdtempSync(join(tmpdir(), "findings-bench-"));
  if (opts.log) {
    const pinning = pinned(0, []).length > 0 ? "server on CPU 0, generator on CPU 1" : "NOT pinned (no taskset or 1 CPU)";
    console.log(`Binding Request → Success on ${HOST}, Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs, ${pinning}`);
    console.log(`${rounds} interleaved rounds × ${seconds} s counted per server (after ${WARMUP_MS} ms warm-up), ` +
      `${sockets} sockets × ${window} in flight; median round shown\n`);
  }
  const runs = new Map<string, Row[]>(targets.map((t) => [t.key, []]));
  try {
    // Rounds interleave the servers so a noisy moment on the host hits them all alike.
    for (let round = 0; round < rounds; round++) {
      for (const target of targets) runs.get(target.key)!.push(await measure(target, dir, seconds, sockets, window));
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const servers = targets.map((t) => {
    const all = runs.get(t.key)!;
    return { key: t.key, name: t.name, median: medianRow(all), bestPerSecond: Math.max(...all.map((x) => x.perSecond)), rounds: all };
  });
  const node = servers.find((s) => s.key === "node");
  const coturn = servers.find((s) => s.key === "coturn");
  const ratio = (f: (s: BindingServerFigures) => number) => (node && coturn ? f(node) / f(coturn) : null);
  return {
    servers,
    coturnVersion,
    bindingRatio: ratio((s) => s.median.perSecond),
    bindingRatioBest: ratio((s) => s.bestPerSecond),
    bindingRatioPerCpu: ratio((s) => s.median.perCpuSecond),
  };
}

async function main(): Promise<void> {
  const result = await runBinding({
    seconds: Number(flag("seconds", "3")),
    rounds: Number(flag("rounds", "3")),
    sockets: Number(flag("sockets", "4")),
    window: Number(flag("window", "32")),
    only: flag("only", "node,bun,batched,dgram,coturn").split(","),
    log: true,
  });
  if (args.includes("--json")) {
    console.log(JSON.stringify(result));
    return;
  }
  const pad = (s: string, n: number) => s.padEnd(n);
  const num = (x: number, width = 12) => Math.round(x).toLocaleString("en-US").padStart(width);
  const pct = (x: number, digits = 0) => `${(x * 100).toFixed(digits)} %`;
  console.log(`${pad("server", 26)}${"answers/s".padStart(11)}${"best".padStart(10)}${"rounds".padStart(18)}` +
    `${"server CPU".padStart(12)}${"answers/CPU-s".padStart(15)}${"lost".padStart(8)}${"generator CPU".padStart(15)}`);
  for (const s of result.servers) {
    const r = s.median;
    const all = s.rounds.map((x) => `${Math.round(x.perSecond / 1000)}k`).join(" ");
    console.log(`${pad(s.name, 26)}${num(r.perSecond, 11)}${num(s.bestPerSecond, 10)}${all.padStart(18)}` +
      `${pct(r.cpuShare).padStart(12)}${num(r.perCpuSecond, 15)}${pct(r.lostShare, 2).padStart(8)}` +
      `${pct(r.generatorCpuShare).padStart(15)}`);
  }
  const coturn = result.servers.find((s) => s.key === "coturn");
  if (coturn !== undefined) {
    console.log("\nratio to coturn            median      best                              per CPU-s");
    for (const s of result.servers) {
      if (s === coturn) continue;
      const ratio = (a: number, b: number, width: number) => `${(a / b).toFixed(2)}×`.padStart(width);
      console.log(`${pad(s.name, 26)}${ratio(s.median.perSecond, coturn.median.perSecond, 11)}${ratio(s.bestPerSecond, coturn.bestPerSecond, 10)}` +
        `${ratio(s.median.perCpuSecond, coturn.median.perCpuSecond, 45)}`);
    }
  }
}

if (import.meta.main) await main();
