// Multi-node harness: runs real `findings serve --json` processes on distinct loopback hosts with temp homes, reads their ready lines, polls their admin /status, and kills them at the end (STYLE §12 tests/multinode).
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import type { ServeReady } from "../helpers.ts";

export const ROOT = join(import.meta.dir, "..", "..");
export const BUN = process.execPath;
export const MAIN = join(ROOT, "src", "main.ts");

/** One port for UDP and TCP on every host, and the admin port next to it. Distinct hosts
 *  (127.0.x.y) keep nodes apart; an uncommon port keeps them away from other tests' 7788. */
export const NODE_PORT = 17788;
export const ADMIN_PORT = 17789;

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
    candidates: { id: string; address: string; rttMs: number | null; lastSeen: number; kinds: string[] }[];
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
  name?: string;
  host: string;
  /** Home folder; reused across restarts. @default a fresh folder under the network's root */
  home?: string;
  config?: ConfigValues;
  /** --peer values. */
  peers?: string[];
  public?: boolean;
  clientOnly?: boolean;
  /** More `findings serve` arguments. */
  args?: string[];
  /** @default 20 s */
  readyTimeoutMs?: number;
}

/** A set of node processes sharing a temp root; stopAll() kills whatever is left. */
export class Network {
  readonly root: string;
  readonly nodes: NodeProcess[] = [];

  constructor(prefix = "findings-multinode-") {
    this.root = mkdtempSync(join(tmpdir(), prefix));
  }

  async start(opts: StartOptions): Promise<NodeProcess> {
    const name = opts.name ?? opts.host;
    const home = opts.home ?? join(this.root, name);
    mkdirSync(home, { recursive: true });
    writeFileSync(join(home, "config.toml"), toToml(opts.config ?? {}));
    const args = ["serve", "--json", "--host", opts.host, "--port", String(NODE_PORT), "--admin", `${opts.host}:${ADMIN_PORT}`, "--home", home];
    for (const p of opts.peers ?? []) args.push("--peer", p);
    if (opts.public) args.push("--public");
    if (opts.clientOnly) args.push("--client-only");
    args.push(...(opts.args ?? []));
    const node = await spawnNode(name, opts.host, home, args, opts.readyTimeoutMs ?? 20_000);
    this.nodes.push(node);
    return node;
  }

  /** Kills every node still running and removes the temp root. */
  async stopAll(): Promise<void> {
    await Promise.all(this.nodes.filter((n) => !n.exited).map((n) => n.kill()));
    rmSync(this.root, { recursive: true, force: true });
  }
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_")) env[k] = v;
  return env;
}

async function spawnNode(name: string, host: string, home: string, args: string[], readyTimeoutMs: number): Promise<NodeProcess> {
  const proc = Bun.spawn([BUN, MAIN, ...args], {
    cwd: ROOT,
    env: cleanEnv(),
    stdout: "pipe",
    // The node's terminal log, kept for a failing test's post-mortem.
    stderr: Bun.file(join(home, `stderr-${Date.now()}.log`)),
  });
  let exited = false;
  void proc.exited.then(() => (exited = true));
  const ready = await readReadyLine(proc.stdout, proc, readyTimeoutMs).catch((err) => {
    proc.kill("SIGKILL");
    throw new Error(`node ${name} did not start: ${err instanceof Error ? err.message : String(err)} (log in ${home})`);
  });
  const adminUrl = ready.admin ?? `http://${host}:${ADMIN_PORT}`;
  return {
    name,
    host,
    home,
    ready,
    proc,
    peerAddress: `${host}:${ready.tcpPort}#${ready.publicKey}`,
    adminUrl,
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
      const timer = setTimeout(() => proc.kill("SIGKILL"), 5000);
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

/** Polls `probe` until it returns a truthy value or the time is up; returns that value. On timeout
 *  throws with `what` and the last value seen, so a failing test says what was missing. */
export async function waitFor<T>(what: string, probe: () => Promise<T | null | undefined | false>, opts: { timeoutMs: number; intervalMs?: number }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let last: unknown = null;
  while (Date.now() < deadline) {
    try {
      const v = await probe();
      if (v) return v;
      last = v;
    } catch (err) {
      last = err instanceof Error ? err.message : String(err);
    }
    await Bun.sleep(opts.intervalMs ?? 500);
  }
  throw new Error(`timed out after ${opts.timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)?.slice(0, 500)})`);
}

/** Statuses of all given nodes at once (a dead node's entry is null). */
export async function statuses(nodes: readonly NodeProcess[]): Promise<(NodeStatus | null)[]> {
  return Promise.all(nodes.map((n) => n.status().catch(() => null)));
}

/** Runs `findings ARGS` (a CLI command as a user would) and returns its output. */
export async function runCli(args: string[], timeoutMs = 20_000): Promise<{ code: number; stdout: string; stderr: string }> {
  const proc = Bun.spawn([BUN, MAIN, ...args], { cwd: ROOT, env: cleanEnv(), stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}
