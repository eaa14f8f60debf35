// Benchmark: whoami requests/s over QUIC on loopback — one connection with N requests in flight, and many
// connections (DESIGN §1 `findings whoami`, §2 shared UDP socket). Bounded: each case runs --case-ms.
// The endpoint runs in a child process (its own event loop, as a node would) unless --in-process is given;
// then each case also reports the CPU time per request of the endpoint and of the client (user + system,
// from /proc and process.cpuUsage), which stays comparable when other work shares the cores.
// Run: ./node_modules/.bin/bun scripts/bench/whoami-quic.ts [--case-ms 2000] [--host 127.0.0.1] [--in-process] [--json]
//      [--quick: the 64-connection cases only] [--profile DIR: the endpoint writes a CPU profile (--cpu-prof-md)]
import { readFileSync } from "node:fs";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { Status } from "../../src/wire/codec.ts";
import type { QuicLink } from "../../src/transport/quic/link.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { whoamiRoute } from "../../src/transport/quic/whoami-handler.ts";
import { argValue } from "./args.ts";

/** How long each case runs by default, in ms: 8 cases × 2 s plus setup stays well under 30 s. */
const DEFAULT_CASE_MS = 2000;
const HOST = argValue("--host") ?? "127.0.0.1";

/** The load comes from one address, so the node's per-host rate for whoami (a defence against floods) would
 *  be measured instead of the request path: the bench serves the same handler without that rate. */
function unlimitWhoami(ep: UdpEndpoint): void {
  ep.router.add(METHOD.app.whoami, { ...whoamiRoute, transports: ["quic"], rate: [{ ratePerS: 1e9, burst: 1e9 }] }, { replace: true });
}


export interface WhoamiRow {
  case: string;
  connections: number;
  concurrency: number;
  requests: number;
  perSecond: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
  /** CPU time of the endpoint process per request, µs (NaN in-process). */
  serverCpuUs: number;
  /** CPU time of the client (this process) per request, µs. */
  clientCpuUs: number;
}

type Measured = Omit<WhoamiRow, "case" | "connections" | "concurrency" | "serverCpuUs" | "clientCpuUs">;

/** USER_HZ of Linux: /proc times are in 1/100 s. */
const CLOCK_TICKS = 100;

/** CPU time (user + system) of process `pid` so far, in µs. */
function procCpuUs(pid: number | undefined): number {
  if (pid === undefined) return NaN;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // utime and stime are fields 14 and 15 of stat(5), counted from after the command name.
    return ((Number(fields[11]) + Number(fields[12])) * 1e6) / CLOCK_TICKS;
  } catch {
    return NaN;
  }
}

/** Runs `fn` and adds both processes' CPU time per request. */
async function measured(serverPid: number | undefined, fn: () => Promise<Measured>): Promise<Measured & Pick<WhoamiRow, "serverCpuUs" | "clientCpuUs">> {
  const s0 = procCpuUs(serverPid);
  const c0 = process.cpuUsage();
  const r = await fn();
  const c = process.cpuUsage(c0);
  const n = Math.max(1, r.requests);
  return { ...r, serverCpuUs: (procCpuUs(serverPid) - s0) / n, clientCpuUs: (c.user + c.system) / n };
}

/** Runs `concurrency` loops per link until the time is up; each loop sends whoami back to back. */
async function drive(links: QuicLink[], concurrency: number, ms: number): Promise<Measured> {
  const end = performance.now() + ms;
  const latencies: number[] = [];
  let errors = 0;
  const loop = async (link: QuicLink) => {
    while (performance.now() < end) {
      const t0 = performance.now();
      try {
        const answer = await link.request(METHOD.app.whoami);
        if (answer.status !== Status.OK) errors++;
        else latencies.push(performance.now() - t0);
      } catch {
        errors++;
      }
    }
  };
  const t0 = performance.now();
  await Promise.all(links.flatMap((link) => Array.from({ length: concurrency }, () => loop(link))));
  const elapsed = performance.now() - t0;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) => latencies[Math.min(latencies.length - 1, Math.floor(latencies.length * p))] ?? NaN;
  return { requests: latencies.length, perSecond: (latencies.length / elapsed) * 1000, p50Ms: pct(0.5), p99Ms: pct(0.99), errors };
}

/** Child role: run the endpoint, print its port, stop when stdin closes. */
async function serve(): Promise<void> {
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: generateNodeKey() }, { host: HOST, port: 0, maxConnectionsPerIp: 1024 });
  await ep.start();
  unlimitWhoami(ep);
  console.log(ep.port);
  for await (const _ of Bun.stdin.stream()) {
    // Keep reading until the parent closes stdin (or dies).
  }
  await ep.stop();
}

/** Starts the endpoint in this process or in a child; returns its port and how to stop it. */
async function startServer(inProcess: boolean): Promise<{ port: number; pid?: number; stop(): Promise<void> }> {
  if (inProcess) {
    const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: generateNodeKey() }, { host: HOST, port: 0, maxConnectionsPerIp: 1024 });
    await ep.start();
    unlimitWhoami(ep);
    return { port: ep.port, stop: () => ep.stop() };
  }
  const profile = argValue("--profile");
  const profArgs = profile ? ["--cpu-prof-md", `--cpu-prof-dir=${profile}`] : [];
  const child = Bun.spawn([process.execPath, ...profArgs, import.meta.path, "--role", "serve", "--host", HOST], { stdin: "pipe", stdout: "pipe", stderr: "inherit" });
  const reader = child.stdout.getReader();
  const { value } = await reader.read();
  const port = Number(new TextDecoder().decode(value).trim());
  if (!Number.isInteger(port) || port <= 0) throw new Error("bench server did not start");
  return {
    port,
    pid: child.pid,
    async stop() {
      child.stdin.end();
      const timer = setTimeout(() => child.kill(), 3000);
      await child.exited;
      clearTimeout(timer);
    },
  };
}

export interface WhoamiOptions {
  /** ms per case. @default 2000 */
  caseMs?: number;
  /** Client and endpoint in this process. @default false (endpoint in a child process) */
  inProcess?: boolean;
  /** Only the 64-connection cases. @default false */
  quick?: boolean;
}

export interface WhoamiResult {
  rows: WhoamiRow[];
  caseMs: number;
  inProcess: boolean;
  /** The best req/s of the 64-connection cases. */
  whoamiPerSecond: number;
}

/** Runs the cases against one endpoint and returns their rows. */
export async function runWhoami(opts: WhoamiOptions = {}): Promise<WhoamiResult> {
  const caseMs = opts.caseMs ?? DEFAULT_CASE_MS;
  const inProcess = opts.inProcess ?? false;
  const server = await startServer(inProcess);
  const ep = { port: server.port };
  const client = createUdpClient({}, { host: HOST });
  await client.start();
  const rows: WhoamiRow[] = [];
  const run = (links: QuicLink[], concurrency: number) => measured(server.pid, () => drive(links, concurrency, caseMs));
  try {
    const one = await client.dial({ ip: HOST, port: ep.port });
    await one.request(METHOD.app.whoami); // warm-up
    for (const concurrency of opts.quick ? [] : [1, 8, 32, 64]) {
      rows.push({ case: "one connection", connections: 1, concurrency, ...(await run([one], concurrency)) });
    }
    await one.close();

    for (const connections of opts.quick ? [64] : [16, 64]) {
      const t0 = performance.now();
      const links = await Promise.all(Array.from({ length: connections }, () => client.dial({ ip: HOST, port: ep.port })));
      const setupMs = performance.now() - t0;
      rows.push({ case: `many connections (setup ${setupMs.toFixed(0)} ms)`, connections, concurrency: 1, ...(await run(links, 1)) });
      rows.push({ case: "many connections", connections, concurrency: 4, ...(await run(links, 4)) });
      await Promise.all(links.map((l) => l.close()));
    }

    // New connection per request: handshake (with stateless retry) + one whoami, sequential.
    if (!opts.quick) {
      const r = await measured(server.pid, async () => {
        const end = performance.now() + caseMs;
        const lat: number[] = [];
        while (performance.now() < end) {
          const t0 = performance.now();
          const link = await client.dial({ ip: HOST, port: ep.port });
          await link.request(METHOD.app.whoami);
          lat.push(performance.now() - t0);
          await link.close();
        }
        lat.sort((a, b) => a - b);
        return {
          requests: lat.length,
          perSecond: (lat.length / caseMs) * 1000,
          p50Ms: lat[Math.floor(lat.length * 0.5)] ?? NaN,
          p99Ms: lat[Math.floor(lat.length * 0.99)] ?? NaN,
          errors: 0,
        };
      });
      if (r.requests > 0) rows.push({ case: "connect + whoami + close", connections: r.requests, concurrency: 1, ...r });
    }
  } finally {
    await client.stop();
    await server.stop();
  }
  const many = rows.filter((r) => r.case.startsWith("many connections") && r.connections === 64);
  return { rows, caseMs, inProcess, whoamiPerSecond: Math.max(0, ...many.map((r) => r.perSecond)) };
}

async function main(): Promise<void> {
  const started = performance.now();
  const caseMs = Number(argValue("--case-ms") ?? DEFAULT_CASE_MS);
  const inProcess = process.argv.includes("--in-process");
  const result = await runWhoami({ caseMs, inProcess, quick: process.argv.includes("--quick") });
  const rows = result.rows;
  if (process.argv.includes("--json")) {
    console.log(JSON.stringify(result));
    return;
  }
  const where = inProcess ? "client and endpoint in one process" : "endpoint in a child process";
  console.log(`whoami over QUIC on ${HOST}, ${where}, ${caseMs} ms per case, Bun ${Bun.version}, ${navigator.hardwareConcurrency} CPUs`);
  console.table(
    rows.map((r) => ({
      case: r.case,
      conns: r.connections,
      "in flight/conn": r.concurrency,
      requests: r.requests,
      "req/s": Math.round(r.perSecond),
      "p50 ms": r.p50Ms.toFixed(2),
      "p99 ms": r.p99Ms.toFixed(2),
      "server CPU µs/req": Math.round(r.serverCpuUs),
      "client CPU µs/req": Math.round(r.clientCpuUs),
      errors: r.errors,
    })),
  );
  console.log(`total ${((performance.now() - started) / 1000).toFixed(1)} s`);
}

if (import.meta.main) {
  if (argValue("--role") === "serve") await serve();
  else await main();
}
