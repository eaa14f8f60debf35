// Multi-node harness: runs real `findings serve --json` processes on hosts of a loopback /24 of this run's own
// (127.A.B.x, one free port), with temp homes; reads their ready lines, polls their admin /status, kills
// every process it started at the end or on any failure, and keeps the homes of a failed run in .tmp/
// (STYLE §12 tests/multinode).
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { test as bunTest } from "bun:test";
import { cleanEnv, freeUdpTcpPort, loopbackPrefix, ONE_MACHINE, type ServeReady } from "../helpers.ts";

export const ROOT = join(import.meta.dir, "..", "..");
export const BUN = process.execPath;
export const MAIN = join(ROOT, "src", "main.ts");

export type ReadyLine = ServeReady & { event: "ready" };

export interface ConfigValues {
  [key: string]: string | number | boolean | string[] | Record<string, string> | undefined;
  stakes?: Record<string, string>;
}

export interface NodeProcess {
  readonly name: string;
  readonly host: string;
  readonly home: string;
  readonly ready: ReadyLine;
  readonly proc: Subprocess;
  /** "ip:port#key": what another node passes as --peer. */
  readonly peerAddress: string;
  readonly adminUrl: string;
  /** "ip:port" of the admin endpoint, as `findings status --admin` takes it. */
  readonly adminAddress: string;
  /** GET /status; throws when the node does not answer. */
  status(): Promise<NodeStatus>;
  /** SIGTERM (clean stop: peers.json written) and wait for the exit. */
  stop(): Promise<number>;
  /** SIGKILL: a crash. */
  kill(): Promise<void>;
  readonly exited: boolean;
}

/** The parts of /status the tests read (src/node.ts status(), src/mesh/mesh-service.ts). */
export interface NodeStatus {
  node: { id: string };
  mesh: {
    role: string;
    serving: boolean;
    record: { id: string; kinds: string[] } | null;
    candidates: { id: string; address: string; proven: string[]; rttMs: number | null; lastSeen: number; kinds: string[] }[];
    mesh: { out: number; in: number; maxOut: number; maxIn: number; links: { peer: string; direction: "in" | "out"; ageMs: number; rttMs: number | null; remote: string }[] };
    bans: { target: string; kind: string; reason: string; source: string }[];
    counters: { messagesIn: Record<string, number>; messagesOut: Record<string, number>; events: Record<string, number> };
    peerCache: { loaded: number; written: number };
  };
}

/** Writes a config.toml: plain keys, then the [stakes] table. */
export function toToml(values: ConfigValues): string {
  const lines: string[] = [];
  const show = (v: unknown): string => (Array.isArray(v) ? `[${v.map(show).join(", ")}]` : typeof v === "string" ? JSON.stringify(v) : String(v));
  for (const [k, v] of Object.entries(values)) if (k !== "stakes") lines.push(`${k} = ${show(v)}`);
  if (values.stakes) {
    lines.push("[stakes]");
    for (const [k, v] of Object.entries(values.stakes)) lines.push(`${JSON.stringify(k)} = ${JSON.stringify(v)}`);
  }
  return lines.join("\n") + "\n";
}

export interface StartOptions {
  name: string;
  host: string;
  /** Home folder; reused across restarts. @default a fresh folder under the network's root */
  home?: string;
  config?: ConfigValues;
  /** --peer values. */
  peers?: string[];
  public?: boolean;
  clientOnly?: boolean;
  /** Port of this node. @default the network's shared port */
  port?: number;
  /** Host of the admin endpoint (a node bound to "::" still has its admin on loopback). @default host */
  adminHost?: string;
  /** More `findings serve` arguments. */
  args?: string[];
  /** @default 60 s (a loaded 2-core machine starting a dozen nodes at once needs it) */
  readyTimeoutMs?: number;
}

/** Processes still running when this process exits, or is stopped by a signal, are killed: no orphans. */
const live = new Set<Subprocess>();
const killLive = () => {
  for (const p of live) p.kill("SIGKILL");
};
process.on("exit", killLive);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  // once: the listener is gone when it runs, so raising the signal again ends this process as it would have.
  process.once(signal, () => {
    killLive();
    process.kill(process.pid, signal);
  });
}

/** Node processes on hosts `<prefix>.1 …` sharing one port and a temp root. Every process it spawns is
 *  tracked from the spawn on, so stopAll() (or a failed start) kills it even before its ready line. */
export class Network {
  readonly nodes: NodeProcess[] = [];
  private readonly procs = new Set<Subprocess>();
  private readonly begun = new Set<string>();
  private readonly passed = new Set<string>();
  private failed = false;
  private stopped = false;

  private constructor(
    readonly name: string,
    readonly root: string,
    /** "127.A.B": this network's own loopback /24. */
    readonly prefix: string,
    /** The UDP and TCP port of every node (admin ports are picked by the nodes). */
    readonly port: number,
  ) {}

  static async create(name: string): Promise<Network> {
    const prefix = loopbackPrefix();
    const port = await freeUdpTcpPort(`${prefix}.1`);
    return new Network(name, mkdtempSync(join(tmpdir(), `findings-${name}-`)), prefix, port);
  }

  /** Host `i` (1..254) of this network. */
  host(i: number): string {
    return `${this.prefix}.${i}`;
  }

  /** "ip:port" of host `i`, for --peer and --server. */
  address(i: number): string {
    return `${this.host(i)}:${this.port}`;
  }

  /** Wraps a test or hook body: one that throws or never finishes marks the run failed, so stopAll()
   *  keeps the logs. */
  watch(label: string, fn: () => Promise<void> | void): () => Promise<void> {
    return async () => {
      this.begun.add(label);
      try {
        await fn();
        this.passed.add(label);
      } catch (err) {
        this.failed = true;
        throw err;
      }
    };
  }

  /** A test whose failure (or timeout) keeps the logs. */
  test(name: string, fn: () => Promise<void> | void, timeoutMs?: number): void {
    bunTest(name, this.watch(name, fn), timeoutMs);
  }

  /** Starts one node and waits for its ready line. */
  async start(opts: StartOptions): Promise<NodeProcess> {
    const home = opts.home ?? join(this.root, opts.name);
    mkdirSync(home, { recursive: true });
    // Every node of a network is on one loopback /24 (ONE_MACHINE); a test may set its own limits.
    writeFileSync(join(home, "config.toml"), toToml({ ...ONE_MACHINE, ...opts.config }));
    const args = ["serve", "--json", "--host", opts.host, "--port", String(opts.port ?? this.port), "--admin", `${opts.adminHost ?? opts.host}:0`, "--home", home];
    for (const p of opts.peers ?? []) args.push("--peer", p);
    if (opts.public) args.push("--public");
    if (opts.clientOnly) args.push("--client-only");
    args.push(...(opts.args ?? []));
    const proc = this.spawn([BUN, MAIN, ...args], { stdout: "pipe", stderr: join(home, `stderr-${Date.now()}.log`) });
    const node = await nodeOf(opts.name, opts.host, home, proc, opts.readyTimeoutMs ?? 60_000).catch((err: unknown) => {
      this.failed = true;
      proc.kill("SIGKILL");
      throw err;
    });
    this.nodes.push(node);
    return node;
  }

  /** Starts all nodes at once. When any fails, every process of this network is killed, the logs are
   *  kept, and the error names each node that failed. */
  async startAll(all: StartOptions[]): Promise<NodeProcess[]> {
    const settled = await Promise.allSettled(all.map((o) => this.start(o)));
    const errors = settled.flatMap((r) => (r.status === "rejected" ? [r.reason instanceof Error ? r.reason.message : String(r.reason)] : []));
    if (errors.length === 0) return settled.map((r) => (r as PromiseFulfilledResult<NodeProcess>).value);
    this.failed = true;
    await this.stopAll();
    throw new Error(`${errors.length} of ${all.length} nodes did not start:\n  ${errors.join("\n  ")}`);
  }

  /** Spawns any process (a CLI helper, a test-only node) that stopAll() must not leave behind. */
  spawn(cmd: string[], opts: { stdout?: "pipe" | "ignore"; stderr?: "pipe" | "ignore" | string } = {}): Subprocess<"ignore", "pipe", "pipe"> {
    const stderr = opts.stderr === undefined || opts.stderr === "pipe" || opts.stderr === "ignore" ? (opts.stderr ?? "pipe") : Bun.file(opts.stderr);
    const proc = Bun.spawn(cmd, { cwd: ROOT, env: cleanEnv(), stdin: "ignore", stdout: opts.stdout ?? "pipe", stderr }) as Subprocess<"ignore", "pipe", "pipe">;
    this.procs.add(proc);
    live.add(proc);
    void proc.exited.then(() => {
      this.procs.delete(proc);
      live.delete(proc);
    });
    return proc;
  }

  /** Kills every process this network started; keeps the temp root in .tmp/ when the run failed (a
   *  watched body threw or never finished), then removes it. */
  async stopAll(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const failed = this.failed || [...this.begun].some((l) => !this.passed.has(l));
    const procs = [...this.procs];
    // A failed run's nodes get a moment to flush their logs; a passed run's are simply killed.
    if (failed) for (const p of procs) p.kill("SIGTERM");
    const killer = setTimeout(() => procs.forEach((p) => p.kill("SIGKILL")), failed ? 3000 : 0);
    await Promise.all(procs.map((p) => p.exited));
    clearTimeout(killer);
    if (failed) keepLogs(this.name, this.root);
    rmSync(this.root, { recursive: true, force: true });
  }
}

/** Copies a failed run's homes (logs, stderr, peers.json) to .tmp/failed-<name>-<time>/ and says where. */
function keepLogs(name: string, root: string): void {
  const dest = join(ROOT, ".tmp", `failed-${name}-${new Date().toISOString().replace(/[:.]/g, "-")}`);
  try {
    cpSync(root, dest, { recursive: true });
    console.error(`\n*** ${name} failed: node homes and logs kept in ${dest}\n`);
  } catch (err) {
    console.error(`\n*** ${name} failed; could not keep its logs: ${err instanceof Error ? err.message : String(err)}\n`);
  }
}

async function nodeOf(name: string, host: string, home: string, proc: Subprocess<"ignore", "pipe", "pipe">, readyTimeoutMs: number): Promise<NodeProcess> {
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const ready = await readReadyLine(proc.stdout, proc, readyTimeoutMs).catch((err: unknown) => {
    throw new Error(`node ${name} did not start: ${err instanceof Error ? err.message : String(err)} (log in ${home})`);
  });
  if (!ready.admin) throw new Error(`node ${name} has no admin endpoint`);
  const adminUrl = ready.admin;
  return {
    name,
    host,
    home,
    ready,
    proc,
    peerAddress: `${host}:${ready.tcpPort}#${ready.publicKey}`,
    adminUrl,
    adminAddress: new URL(adminUrl).host,
    get exited() {
      return exited;
    },
    async status() {
      const res = await fetch(`${adminUrl}/status`, { signal: AbortSignal.timeout(3000) });
      if (!res.ok) throw new Error(`${name} /status: HTTP ${res.status}`);
      return (await res.json()) as NodeStatus;
    },
    async stop() {
      proc.kill("SIGTERM");
      // A clean stop takes well under a second alone; a loaded machine may need many.
      const timer = setTimeout(() => proc.kill("SIGKILL"), 20_000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
    async kill() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}

/** The first stdout line, parsed; the rest of stdout is drained so the pipe never fills. */
async function readReadyLine(stdout: ReadableStream<Uint8Array>, proc: Subprocess, timeoutMs: number): Promise<ReadyLine> {
  const reader = stdout.getReader();
  const decoder = new TextDecoder();
  let text = "";
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  try {
    while (!text.includes("\n")) {
      const { value, done } = await reader.read();
      if (done) throw new Error(`exited before its ready line (code ${await proc.exited})`);
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    clearTimeout(timer);
  }
  void (async () => {
    try {
      while (!(await reader.read()).done);
    } catch {
      // the process is gone
    }
  })();
  return JSON.parse(text.slice(0, text.indexOf("\n"))) as ReadyLine;
}

/** Statuses of all given nodes at once (a dead node's entry is null). */
export async function statuses(nodes: readonly NodeProcess[]): Promise<(NodeStatus | null)[]> {
  return Promise.all(nodes.map((n) => n.status().catch(() => null)));
}

/** Runs `findings ARGS` (a CLI command as a user would) and returns its output. */
export async function runCli(args: string[], timeoutMs = 30_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, MAIN, ...args], { cwd: ROOT, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}
