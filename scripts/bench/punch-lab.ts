// `findings punch` in the NAT lab (DESIGN §7, §10): one `findings serve` node in fl-s1 that serves an app kind,
// `findings punch --wait` apps in client namespaces, one-shot `findings punch <id>` runs, and what the lab is
// expected to allow for each pair of classes. Shared by tests/lab/punch-grid.test.ts and scripts/bench/punch-grid.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { NatClassName } from "../../src/nat/class.ts";
import { BUN, LAB_CLIENTS, type LabClass } from "../../tests/lab/lab.ts";
import { collectLines } from "../../tests/wait.ts";

export const MAIN = resolve(import.meta.dir, "../../src/main.ts");
/** The punch node listens on fl-s1's first address, on a port of its own (the probe harness uses 7788). */
export const PUNCH_NODE_IP = "203.0.113.1";
export const PUNCH_NODE_PORT = 7790;
export const PUNCH_KIND = "app:chat";

export const NAT_OF: Readonly<Record<LabClass, NatClassName>> = Object.fromEntries(LAB_CLIENTS.map((c) => [c.cls, c.nat])) as Record<LabClass, NatClassName>;
export const NS_OF: Readonly<Record<LabClass, string>> = Object.fromEntries(LAB_CLIENTS.map((c) => [c.cls, c.ns])) as Record<LabClass, string>;

/** What the lab's Linux NATs let `findings punch` do for a pair (either direction):
 *  - connect: every pair among public, full-cone, restricted-cone, port-restricted-cone and udp-firewall, and
 *    symmetric with public, full-cone, restricted-cone (sym-to-restricted) and udp-firewall (birthday spray);
 *  - refused (fast, by the node): symmetric ↔ symmetric; symmetric ↔ port-restricted-cone (a spray cannot meet
 *    a Linux NAT that re-maps tuples it saw inbound first: punch-service.ts sprayNatCones); and anything with
 *    udp-blocked fails before that (no UDP path to the node). */
export function expectedOutcome(a: LabClass, b: LabClass): "connect" | "refused" {
  if (a === "udpblk" || b === "udpblk") return "refused";
  if (a === "sym" && (b === "sym" || b === "prc")) return "refused";
  if (b === "sym" && a === "prc") return "refused";
  return "connect";
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_")) env[k] = v;
  return env;
}

/** Empties the restricted-cone router's box-wide "seen" set: earlier runs' traffic from fl-c-rc keeps hosts
 *  admitted for 120 s, which would make the restricted cone a full cone towards them. */
export function resetRestrictedConeSeen(): void {
  Bun.spawnSync(["ip", "netns", "exec", "fl-r-rc", "nft", "flush", "set", "ip", "fl_lab", "seen"], { stdout: "ignore", stderr: "ignore" });
}

/** Tables in the routers other than the lab's own `fl_lab` (someone is changing the lab), or []. */
export function foreignRouterTables(): string[] {
  const out: string[] = [];
  for (const c of LAB_CLIENTS) {
    if (!c.router) continue;
    const r = Bun.spawnSync(["ip", "netns", "exec", c.router, "nft", "list", "tables"], { stdout: "pipe", stderr: "ignore" });
    for (const line of r.stdout.toString().split("\n")) if (line.trim() && !/\bfl_lab$/.test(line.trim())) out.push(`${c.router}: ${line.trim()}`);
  }
  return out;
}

/** A long-running process whose stdout is read line by line. */
export interface LineProc {
  readonly pid: number;
  readonly lines: string[];
  stderr(): string;
  /** The first JSON line from index `from` on that satisfies `pred`. */
  next(pred: (o: Record<string, unknown>) => boolean, ms?: number, from?: number): Promise<Record<string, unknown>>;
  stop(signal?: NodeJS.Signals): Promise<number>;
}

export function spawnLines(cmd: string[]): LineProc {
  const proc = Bun.spawn(cmd, { stdin: "ignore", stdout: "pipe", stderr: "pipe", env: cleanEnv() });
  const lines = collectLines(proc.stdout);
  let err = "";
  void (async () => {
    for await (const chunk of proc.stderr) err += new TextDecoder().decode(chunk);
  })();
  return {
    pid: proc.pid,
    lines,
    stderr: () => err,
    async next(pred, ms = 15_000, from = 0) {
      const end = Date.now() + ms;
      for (;;) {
        for (const l of lines.slice(from)) {
          if (!l.startsWith("{")) continue;
          try {
            const o = JSON.parse(l) as Record<string, unknown>;
            if (pred(o)) return o;
          } catch {
            // a partial or non-JSON line
          }
        }
        if (proc.exitCode !== null) throw new Error(`${cmd.slice(0, 6).join(" ")} … exited ${proc.exitCode}: ${err.trim().slice(-400)}`);
        if (Date.now() > end) throw new Error(`no matching line within ${ms} ms; stdout: ${lines.join(" | ").slice(-400)}; stderr: ${err.trim().slice(-400)}`);
        await Bun.sleep(25);
      }
    },
    async stop(signal = "SIGTERM") {
      if (proc.exitCode === null) proc.kill(signal);
      const t = setTimeout(() => proc.kill("SIGKILL"), 5_000);
      const code = await proc.exited;
      clearTimeout(t);
      return code;
    },
  };
}

export interface PunchNode {
  /** "203.0.113.1:7790#<key>" for --server. */
  server: string;
  id: string;
  stop(): Promise<void>;
}

/** Starts the punch node in fl-s1 serving PUNCH_KIND (and a blockchain kind), `--public`. */
export async function startPunchNode(opts: { port?: number; punchXpool?: number; main?: string } = {}): Promise<PunchNode> {
  const home = mkdtempSync(join(tmpdir(), "findings-punch-node-"));
  writeFileSync(join(home, "config.toml"), `punch_xpool = ${opts.punchXpool ?? 500}\n[stakes]\n"*" = "0xLABDEFAULT"\n"${PUNCH_KIND}" = ""\n"blockchain:bitcoin" = "bc1qlab"\n`);
  const port = opts.port ?? PUNCH_NODE_PORT;
  const p = spawnLines(["ip", "netns", "exec", "fl-s1", BUN, opts.main ?? MAIN, "serve", "--json", "--host", PUNCH_NODE_IP, "--port", String(port), "--admin", "", "--public", "--home", home, "--log-level", "warn"]);
  try {
    const ready = await p.next((o) => o.event === "ready", 20_000);
    return {
      server: `${PUNCH_NODE_IP}:${port}#${ready.publicKey as string}`,
      id: ready.id as string,
      async stop() {
        await p.stop();
        rmSync(home, { recursive: true, force: true });
      },
    };
  } catch (err) {
    await p.stop("SIGKILL");
    rmSync(home, { recursive: true, force: true });
    throw err;
  }
}

/** Homes of lab apps (one per role and class), made on first use and removed by `removeAppHomes`. */
let appHomes: string | undefined;
export function appHome(name: string): string {
  appHomes ??= mkdtempSync(join(tmpdir(), "findings-punch-apps-"));
  const dir = join(appHomes, name);
  mkdirSync(dir, { recursive: true });
  return dir;
}
export function removeAppHomes(): void {
  if (appHomes) rmSync(appHomes, { recursive: true, force: true });
  appHomes = undefined;
}

export interface Waiter extends LineProc {
  cls: LabClass;
  id: string;
  hello: Record<string, unknown>;
}

/** `findings punch --wait` in the client namespace of `cls`. */
export async function startWaiter(cls: LabClass, opts: { server: string; name?: string; port?: number; nat?: NatClassName; main?: string }): Promise<Waiter> {
  const { server } = opts;
  const args = ["punch", "--wait", "--json", "--server", server, "--kind", PUNCH_KIND, "--nat", opts.nat ?? NAT_OF[cls], "--home", appHome(opts.name ?? `wait-${cls}`)];
  if (opts.port) args.push("--port", String(opts.port));
  const p = spawnLines(["ip", "netns", "exec", NS_OF[cls], BUN, opts.main ?? MAIN, ...args]);
  try {
    const hello = await p.next((o) => o.waiting === true, 20_000);
    return { ...p, cls, id: hello.id as string, hello };
  } catch (err) {
    await p.stop("SIGKILL");
    throw err;
  }
}

/** `findings punch --keep` (stays and prints every result) in the namespace of `cls`. */
export function startKeeper(cls: LabClass, opts: { server: string; targetId: string; name?: string }): LineProc {
  const { server, targetId, name = `keep-${cls}` } = opts;
  return spawnLines(["ip", "netns", "exec", NS_OF[cls], BUN, MAIN, "punch", targetId, "--keep", "--json", "--server", server, "--kind", PUNCH_KIND, "--nat", NAT_OF[cls], "--home", appHome(name)]);
}

export interface PunchRun {
  result: Record<string, unknown> | null;
  code: number;
  stderr: string;
  /** Wall time of the whole process (Bun start-up included), ms. */
  wallMs: number;
}

/** One `findings punch [id] --json` in the namespace of `cls`. */
export async function punchOnce(cls: LabClass, opts: { server: string; targetId: string | null; name?: string; extra?: string[]; nat?: string; timeoutMs?: number; main?: string }): Promise<PunchRun> {
  const { server, targetId } = opts;
  const args = ["punch", ...(targetId ? [targetId] : []), "--json", "--server", server, "--kind", PUNCH_KIND, ...(opts.nat === "" ? [] : ["--nat", opts.nat ?? NAT_OF[cls]]), "--home", appHome(opts.name ?? `punch-${cls}`), ...(opts.extra ?? [])];
  const t0 = performance.now();
  const proc = Bun.spawn(["ip", "netns", "exec", NS_OF[cls], BUN, opts.main ?? MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: cleanEnv() });
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 40_000);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  let result: Record<string, unknown> | null = null;
  try {
    result = JSON.parse(out) as Record<string, unknown>;
  } catch {
    result = null;
  }
  return { result, code, stderr: err, wallMs: performance.now() - t0 };
}
