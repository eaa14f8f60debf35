// Shared test helpers: temp folders, the repo's bun, running the CLI as a user would.
import { afterAll, beforeAll } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { within } from "./wait.ts";

export const ROOT = join(import.meta.dir, "..");
export const BUN = process.execPath;
export const MAIN = join(ROOT, "src", "main.ts");

export function tempDir(prefix = "findings-test-"): { path: string; [Symbol.dispose](): void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

let scratch: string | undefined;
/** A home folder for commands a test runs without `--home`: one per test process, removed when it exits,
 *  so that tests never write keys or known hosts into the user's ~/.findings. */
export function scratchHome(): string {
  if (!scratch) {
    const path = mkdtempSync(join(tmpdir(), "findings-scratch-home-"));
    scratch = path;
    process.once("exit", () => rmSync(path, { recursive: true, force: true }));
  }
  return scratch;
}

/** process.env without FINDINGS_* settings, with FINDINGS_HOME at the scratch home (`--home` still wins). */
export function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_")) env[k] = v;
  env.FINDINGS_HOME = scratchHome();
  return env;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `findings ARGS` from source with a clean FINDINGS_* environment (cleanEnv). */
export async function runCli(args: string[], opts: { env?: Record<string, string>; cwd?: string; timeoutMs?: number } = {}): Promise<CliResult> {
  const env = cleanEnv();
  const proc = Bun.spawn([BUN, MAIN, ...args], { env: { ...env, ...opts.env }, cwd: opts.cwd ?? ROOT, stdout: "pipe", stderr: "pipe" });
  const timer = setTimeout(() => proc.kill(), opts.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  return { code, stdout, stderr };
}

export interface ServeReady {
  id: string;
  publicKey: string;
  udpPort: number;
  tcpPort: number;
  admin: string | null;
  spki: string;
}

export interface ServeProcess {
  proc: Bun.Subprocess<"ignore", "pipe", "pipe">;
  ready: ServeReady;
  /** stderr collected so far (readable log lines). */
  stderr(): string;
  /** Sends `signal` and waits for the exit code. */
  stop(signal?: NodeJS.Signals): Promise<number>;
}

/** Starts `findings serve --json …` from source and waits for its ready line. */
export async function startServe(args: string[], opts: { env?: Record<string, string>; timeoutMs?: number } = {}): Promise<ServeProcess> {
  const env = cleanEnv();
  const proc = Bun.spawn([BUN, MAIN, "serve", "--json", ...args], { env: { ...env, ...opts.env }, cwd: ROOT, stdin: "ignore", stdout: "pipe", stderr: "pipe" });
  let err = "";
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  const reader = proc.stdout.getReader();
  let out = "";
  const deadline = Date.now() + (opts.timeoutMs ?? 20_000);
  while (!out.includes("\n")) {
    const next = await within(reader.read(), { what: "the ready line", timeoutMs: Math.max(1, deadline - Date.now()) }).catch(() => null);
    if (next === null || next.done) {
      proc.kill();
      throw new Error(`findings serve did not become ready: ${err.trim().split("\n").slice(-3).join(" | ")}`);
    }
    out += new TextDecoder().decode(next.value);
  }
  reader.releaseLock();
  const ready = JSON.parse(out.slice(0, out.indexOf("\n"))) as ServeReady;
  return {
    proc,
    ready,
    stderr: () => err,
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
      const code = await proc.exited;
      clearTimeout(timer);
      return code;
    },
  };
}

/** One `findings serve --public` on 127.0.0.1 (free ports, scratch home, no admin) for a whole test
 *  file: started before its tests, stopped and its home removed after them. */
export function publicNodeForFile(homePrefix?: string): { readonly ready: ServeReady } {
  const home = tempDir(homePrefix);
  let node: ServeProcess | undefined;
  beforeAll(async () => {
    node = await startServe(["--home", home.path, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"]);
  });
  afterAll(async () => {
    await node?.stop();
    home[Symbol.dispose]();
  });
  return {
    get ready() {
      if (!node) throw new Error("the node is not started yet (use it inside a test)");
      return node.ready;
    },
  };
}

/** A UDP/TCP port that was free a moment ago on `host`. */
export async function freePort(host = "127.0.0.1"): Promise<number> {
  const s = await Bun.udpSocket({ hostname: host });
  const port = s.port;
  s.close();
  return port;
}

/** Config for nodes that share one machine (one loopback /24): loopback targets allowed, and the
 *  diversity limits (per /24) loose enough for a whole test network. */
export const ONE_MACHINE = { allow_special_targets: true, mesh_per_prefix: 64, candidates_per_prefix: 10_000 } as const;

/** A loopback /24 of this run's own, "127.A.B" with A ≠ 0 (Linux routes all of 127/8 to lo), so tests
 *  that give each node its own host do not meet another run's nodes, nor fixed 127.0.x addresses. */
export function loopbackPrefix(): string {
  const [a, b] = crypto.getRandomValues(new Uint8Array(2));
  return `127.${1 + (a! % 254)}.${b}`;
}

/** A port free for both UDP and TCP on `host` a moment ago (nodes use one port for both). */
export async function freeUdpTcpPort(host: string): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt++) {
    const udp = await Bun.udpSocket({ hostname: host });
    const port = udp.port;
    try {
      const tcp = Bun.listen({ hostname: host, port, socket: { data() {} } });
      tcp.stop(true);
      return port;
    } catch {
      // TCP holds this port on `host`: try another
    } finally {
      udp.close();
    }
  }
  throw new Error(`no port free for both UDP and TCP on ${host}`);
}
