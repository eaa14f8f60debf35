// Shared parts of the QUIC connection benchmarks (storm.ts, idle-connections.ts): one real `findings serve`
// process, its CPU time and RSS from /proc, and dialer processes that hold many app connections to it from
// several loopback source addresses (each address one UDP socket, like one app host or one NAT).
//
// Dialer role (spawned by startDialers): reads one JSON command per line on stdin, answers one JSON line
// per command on stdout:
//   {"op":"dial", server, sources, count, timeoutMs, request}  → {"op":"dialed", up, never, requestsAnswered, ms}
//   {"op":"report"}                                            → {"op":"report", up, live, died, cpuMs, rssMiB}
//   {"op":"stop"}                                              → exits
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";

const ROOT = join(import.meta.dir, "..", "..");
const MAIN = join(ROOT, "src", "main.ts");
/** Linux reports /proc CPU times in clock ticks; USER_HZ is 100 on every mainstream kernel. */
const CLOCK_TICKS_PER_S = 100;

export interface ServedNode {
  host: string;
  port: number;
  spki: string;
  pid: number;
  /** User + system CPU time of the node process so far, in ms (from /proc/<pid>/stat). */
  cpuMs(): number;
  /** Resident set size of the node process now, in MiB (from /proc/<pid>/status). */
  rssMiB(): number;
  /** The node's /metrics text. */
  metrics(): Promise<string>;
  alive(): boolean;
  stop(): Promise<void>;
}

/** CPU time (user + system) of a process in ms, from /proc. */
export function procCpuMs(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / CLOCK_TICKS_PER_S;
}

/** Resident set size of a process in MiB, from /proc. */
export function procRssMiB(pid: number | "self"): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return m ? Number(m[1]) / 1024 : NaN;
}

/** A loopback /16 of this run's own ("127.A.B" hosts come from "127.A.x.y"), so runs do not meet. */
export function loopbackBase(): number {
  return 2 + (crypto.getRandomValues(new Uint8Array(1))[0]! % 250);
}

/** `n` loopback source addresses, each on its own /24 (per-prefix rate limits then see n hosts). */
export function sourceAddresses(base: number, n: number): string[] {
  return Array.from({ length: n }, (_, i) => `127.${base}.${10 + (i % 240)}.${1 + Math.floor(i / 240)}`);
}

/** Starts `findings serve --json` on `host` with config.toml `config` (plus loopback allowances). */
export async function startNode(host: string, config: Record<string, number | boolean | string>): Promise<ServedNode> {
  const home = mkdtempSync(join(tmpdir(), "findings-bench-"));
  const all = { allow_special_targets: true, ...config };
  writeFileSync(join(home, "config.toml"), Object.entries(all).map(([k, v]) => `${k} = ${JSON.stringify(v)}`).join("\n") + "\n");
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_")) env[k] = v;
  const proc = Bun.spawn([process.execPath, MAIN, "serve", "--json", "--public", "--host", host, "--port", "0", "--admin", `${host}:0`, "--home", home, "--log-level", "warn"], {
    cwd: ROOT,
    env,
    stdin: "ignore",
    stdout: "pipe",
    stderr: Bun.file(join(home, "stderr.log")),
  });
  const reader = proc.stdout.getReader();
  let out = "";
  const deadline = Date.now() + 30_000;
  while (!out.includes("\n")) {
    const next = await Promise.race([reader.read(), Bun.sleep(Math.max(1, deadline - Date.now())).then(() => null)]);
    if (next === null || next.done) {
      proc.kill("SIGKILL");
      throw new Error(`findings serve did not start: ${readFileSync(join(home, "stderr.log"), "utf8").slice(-400)}`);
    }
    out += new TextDecoder().decode(next.value);
  }
  reader.releaseLock();
  const ready = JSON.parse(out.slice(0, out.indexOf("\n"))) as { udpPort: number; spki: string; admin: string };
  return {
    host,
    port: ready.udpPort,
    spki: ready.spki,
    pid: proc.pid,
    cpuMs: () => procCpuMs(proc.pid),
    rssMiB: () => procRssMiB(proc.pid),
    metrics: async () => (await fetch(`${ready.admin}/metrics`, { signal: AbortSignal.timeout(5000) })).text(),
    alive: () => proc.exitCode === null && proc.signalCode === null,
    async stop() {
      if (proc.exitCode === null) proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
      await proc.exited;
      clearTimeout(timer);
      rmSync(home, { recursive: true, force: true });
    },
  };
}

/** The value of one metric line (`name{labels} value`) in a /metrics text, or 0. */
export function metricValue(text: string, name: string, labels = ""): number {
  for (const line of text.split("\n")) if (line.startsWith(`${name}${labels ? `{${labels}}` : ""} `)) return Number(line.slice(line.lastIndexOf(" ") + 1));
  return 0;
}

export interface DialCommand {
  server: { ip: string; port: number; spki: string };
  sources: string[];
  count: number;
  timeoutMs: number;
  /** Send one whoami on each connection once it is up. */
  request: boolean;
}
export interface DialResult {
  up: number;
  never: number;
  requestsAnswered: number;
  /** Links that came up but whose request got no answer (a dead link, or one too slow to answer). */
  requestsFailed: number;
  /** A few of the errors seen (dials and requests), counted by message. */
  errors: Record<string, number>;
  ms: number;
}
export interface DialerReport {
  up: number;
  live: number;
  died: number;
  cpuMs: number;
  rssMiB: number;
}

interface Dialer {
  proc: Subprocess<"pipe", "pipe", "inherit">;
  ask<T>(cmd: object): Promise<T>;
}

export interface DialerFleet {
  /** Dials `count` connections spread over the workers and `sources`, all at once. */
  dial(cmd: DialCommand): Promise<DialResult>;
  report(): Promise<DialerReport>;
  stop(): Promise<void>;
}

/** Spawns `workers` dialer processes (the client side needs its own cores' worth of event loops). */
export async function startDialers(workers: number): Promise<DialerFleet> {
  const dialers: Dialer[] = [];
  for (let i = 0; i < workers; i++) {
    const proc = Bun.spawn([process.execPath, import.meta.path, "--role", "dialer"], { cwd: ROOT, env: { ...process.env }, stdin: "pipe", stdout: "pipe", stderr: "inherit" });
    const reader = proc.stdout.getReader();
    let buf = "";
    const nextLine = async (): Promise<string> => {
      while (!buf.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("a dialer process exited");
        buf += new TextDecoder().decode(value);
      }
      const line = buf.slice(0, buf.indexOf("\n"));
      buf = buf.slice(buf.indexOf("\n") + 1);
      return line;
    };
    let queue: Promise<unknown> = Promise.resolve();
    const ask = <T>(cmd: object): Promise<T> => {
      const p = queue.then(async () => {
        proc.stdin.write(JSON.stringify(cmd) + "\n");
        proc.stdin.flush();
        return JSON.parse(await nextLine()) as T;
      });
      queue = p.catch(() => {});
      return p;
    };
    dialers.push({ proc, ask });
  }
  return {
    async dial(cmd) {
      const parts = dialers.map((_, w) => ({
        ...cmd,
        sources: cmd.sources.filter((_, i) => i % dialers.length === w),
        count: Math.floor(cmd.count / dialers.length) + (w < cmd.count % dialers.length ? 1 : 0),
      }));
      const results = await Promise.all(dialers.map((d, w) => d.ask<DialResult>({ op: "dial", ...parts[w] })));
      return {
        up: results.reduce((s, r) => s + r.up, 0),
        never: results.reduce((s, r) => s + r.never, 0),
        requestsAnswered: results.reduce((s, r) => s + r.requestsAnswered, 0),
        requestsFailed: results.reduce((s, r) => s + r.requestsFailed, 0),
        errors: results.reduce<Record<string, number>>((all, r) => {
          for (const [k, v] of Object.entries(r.errors)) all[k] = (all[k] ?? 0) + v;
          return all;
        }, {}),
        ms: Math.max(...results.map((r) => r.ms)),
      };
    },
    async report() {
      const rs = await Promise.all(dialers.map((d) => d.ask<DialerReport>({ op: "report" })));
      return {
        up: rs.reduce((s, r) => s + r.up, 0),
        live: rs.reduce((s, r) => s + r.live, 0),
        died: rs.reduce((s, r) => s + r.died, 0),
        cpuMs: rs.reduce((s, r) => s + r.cpuMs, 0),
        rssMiB: rs.reduce((s, r) => s + r.rssMiB, 0),
      };
    },
    async stop() {
      await Promise.all(
        dialers.map(async (d) => {
          d.proc.stdin.write(JSON.stringify({ op: "stop" }) + "\n");
          d.proc.stdin.end();
          const timer = setTimeout(() => d.proc.kill("SIGKILL"), 10_000);
          await d.proc.exited;
          clearTimeout(timer);
        }),
      );
    },
  };
}

/** Dialer role: holds the connections of this process; never exits on a failed dial. */
async function dialerMain(): Promise<void> {
  const { createUdpClient } = await import("../../src/transport/udp/client.ts");
  const { METHOD } = await import("../../src/rpc/methods.ts");
  type Client = ReturnType<typeof createUdpClient>;
  const clients = new Map<string, Client>();
  let up = 0;
  let died = 0;
  let live = 0;
  /** Round robin over the sources, carried across dial commands so that every source gets its share. */
  let next = 0;
  const write = (o: object) => process.stdout.write(JSON.stringify(o) + "\n");
  const clientFor = async (source: string): Promise<Client> => {
    let c = clients.get(source);
    if (!c) {
      c = createUdpClient({}, { host: source });
      await c.start();
      c.on("close", () => {
        live--;
        died++;
      });
      clients.set(source, c);
    }
    return c;
  };
  let buf = "";
  for await (const chunk of Bun.stdin.stream()) {
    buf += new TextDecoder().decode(chunk);
    while (buf.includes("\n")) {
      const line = buf.slice(0, buf.indexOf("\n"));
      buf = buf.slice(buf.indexOf("\n") + 1);
      const cmd = JSON.parse(line) as { op: string } & Partial<DialCommand>;
      if (cmd.op === "stop") {
        await Promise.allSettled([...clients.values()].map((c) => c.stop()));
        process.exit(0);
      }
      if (cmd.op === "report") {
        write({ op: "report", up, live, died, cpuMs: procCpuMs("self"), rssMiB: procRssMiB("self") });
        continue;
      }
      const d = cmd as DialCommand;
      const sockets = await Promise.all(d.sources.map(clientFor));
      const t0 = performance.now();
      let ok = 0;
      let never = 0;
      let requestsAnswered = 0;
      let requestsFailed = 0;
      const errors: Record<string, number> = {};
      const note = (err: unknown) => {
        // Addresses and numbers out, so that one message counts once.
        const msg = (err instanceof Error ? err.message : String(err)).replace(/[\d.:]+/g, "#").slice(0, 80);
        if (errors[msg] !== undefined || Object.keys(errors).length < 8) errors[msg] = (errors[msg] ?? 0) + 1;
      };
      await Promise.all(
        Array.from({ length: d.count }, async () => {
          const client = sockets[next++ % sockets.length]!;
          try {
            const link = await client.dial({ ip: d.server.ip, port: d.server.port }, { pinSpki: d.server.spki || undefined, timeoutMs: d.timeoutMs });
            ok++;
            up++;
            live++;
            if (d.request) {
              const answer = await link.request(METHOD.app.whoami).catch((err: unknown) => {
                note(err);
                return null;
              });
              if (answer) requestsAnswered++;
              else requestsFailed++;
            }
          } catch (err) {
            note(err);
            never++;
          }
        }),
      );
      write({ op: "dialed", up: ok, never, requestsAnswered, requestsFailed, errors, ms: performance.now() - t0 });
    }
  }
}

if (process.argv[2] === "--role" && process.argv[3] === "dialer") await dialerMain();
