// `findings punch` in the NAT lab (DESIGN §7, §10): one `findings serve` node in fl-s1 that serves an app kind,
// `findings punch --wait` apps in client namespaces, one-shot `findings punch <id>` runs, and what the lab is
// expected to allow for each pair of classes. Shared by tests/lab/punch-grid.test.ts and scripts/bench/punch-grid.ts.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { NatClassName } from "../../src/nat/class.ts";
import { BUN, LAB_CLIENTS, labUp, type LabClass } from "../../tests/lab/lab.ts";
import { labIsUp } from "../../tests/lab/lab-servers.ts";
import { collectLines } from "../../tests/wait.ts";

export const MAIN = resolve(import.meta.dir, "../../src/main.ts");
/** The punch node listens on fl-s1's first address, on a port of its own (the probe harness uses 7788). */
export const PUNCH_NODE_IP = "203.0.113.1";
export const PUNCH_NODE_PORT = 7790;
export const PUNCH_KIND = "app:chat";

export const NAT_OF: Readonly<Record<LabClass, NatClassName>> = Object.fromEntries(LAB_CLIENTS.map((c) => [c.cls, c.nat])) as Record<LabClass, NatClassName>;
export const NS_OF: Readonly<Record<LabClass, string>> = Object.fromEntries(LAB_CLIENTS.map((c) => [c.cls, c.ns])) as Record<LabClass, string>;

export type PairOutcome = "connect" | "refused" | "fails";

/** What the lab's routers let `findings punch` from `a` to the waiting `b` do, with the node's defaults:
 *  - connect: every pair of cones, open and firewalled classes (QUIC-only included), bare or firewalled router,
 *    but the one below; symmetric with public, full-cone, restricted-cone (sym-to-restricted), udp-firewall and a
 *    port-restricted cone behind a firewalled home router (birthday spray);
 *  - fails: a puncher behind a bare Linux NAT's port-restricted cone towards a waiting port-restricted cone or
 *    QUIC-only: they send together (punch-order.ts), the waiter got its offer first, and its first packets reach
 *    the bare router before the puncher's own, so the router re-maps the puncher's flow to it; and symmetric ↔
 *    a port-restricted cone behind a bare Linux NAT (the spray runs out its budget: that router delivers the
 *    symmetric side's openers to itself and re-maps the tuples they leave). Firewalled routers leave nothing.
 *  - refused (fast, by the node): symmetric ↔ symmetric; symmetric ↔ QUIC-only (its box drops the spray's
 *    openers); anything with udp-blocked fails before that (no UDP path to the node). */
export function expectedOutcome(a: LabClass, b: LabClass): PairOutcome {
  if (a === "udpblk" || b === "udpblk") return "refused";
  const sym = (c: LabClass) => NAT_OF[c] === "symmetric";
  if (sym(a) && sym(b)) return "refused";
  if (!sym(a) && !sym(b)) return a === "prc" && (NAT_OF[b] === "port-restricted-cone" || NAT_OF[b] === "quic-only") ? "fails" : "connect";
  const cone = sym(a) ? b : a;
  if (cone === "quic-fw") return "refused";
  if (cone === "prc") return "fails";
  return "connect";
}

/** Whether a pair must run after all others: a failed attempt against a waiter behind a bare Linux NAT leaves
 *  re-mapped tuples whose port the router then reuses for the waiter's later flows (punch-order.ts), so the
 *  node's idea of its address is wrong until they expire. */
export function disturbsWaiter(a: LabClass, b: LabClass): boolean {
  return expectedOutcome(a, b) === "fails" && LAB_CLIENTS.find((c) => c.cls === b)?.routerKind === "bare";
}

/** The ordered pairs of `classes` (each with itself left out) in phases: the pairs of one phase share no
 *  namespace, so they can run at once (a client takes part in one punch at a time, and the restricted-cone
 *  routers' "seen" sets are emptied per router). Round-robin tournament, every unordered pair one way, then
 *  every pair the other way: a failed attempt's conntrack entries (30 s for unreplied UDP) are gone before the
 *  same two sockets meet again. Phases of at most `width` pairs, split evenly; pairs that disturb their waiter
 *  (disturbsWaiter) come last, one phase each. */
export function pairPhases(classes: readonly LabClass[], width: number): [LabClass, LabClass][][] {
  const ring: (LabClass | null)[] = [...classes];
  if (ring.length % 2) ring.push(null);
  const n = ring.length;
  const rounds: [LabClass, LabClass][][] = [];
  for (let r = 0; r < n - 1; r++) {
    const round: [LabClass, LabClass][] = [];
    for (let i = 0; i < n / 2; i++) {
      const a = ring[i]!;
      const b = ring[n - 1 - i]!;
      if (a !== null && b !== null) round.push(r % 2 ? [b, a] : [a, b]);
    }
    rounds.push(round);
    ring.splice(1, 0, ring.pop()!); // keep the first, rotate the rest
  }
  const phases: [LabClass, LabClass][][] = [];
  const last: [LabClass, LabClass][] = [];
  for (const all of [...rounds, ...rounds.map((x) => x.map(([a, b]) => [b, a] as [LabClass, LabClass]))]) {
    const round = all.filter(([a, b]) => !disturbsWaiter(a, b));
    last.push(...all.filter(([a, b]) => disturbsWaiter(a, b)));
    if (round.length === 0) continue;
    const parts = Math.ceil(round.length / width);
    const size = Math.ceil(round.length / parts);
    for (let i = 0; i < round.length; i += size) phases.push(round.slice(i, i + size));
  }
  return [...phases, ...last.map((p) => [p])];
}

function cleanEnv(): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined && !k.startsWith("FINDINGS_")) env[k] = v;
  return env;
}

/** Empties the restricted-cone routers' box-wide "seen" sets (only those of `classes` when given): earlier
 *  runs' traffic from fl-c-rc keeps hosts admitted for 120 s, which would make the restricted cone a full cone
 *  towards them. */
export function resetRestrictedConeSeen(classes?: readonly LabClass[]): void {
  for (const c of LAB_CLIENTS) {
    if (c.nat !== "restricted-cone" || (classes && !classes.includes(c.cls))) continue;
    Bun.spawnSync(["ip", "netns", "exec", c.router!, "nft", "flush", "set", "ip", "fl_lab", "seen"], { stdout: "ignore", stderr: "ignore" });
  }
}

/** Brings the lab up for a test file and returns whether it was up already; refuses a lab whose routers
 *  carry someone else's rules (another test is changing it). */
export function labUpUnshared(): boolean {
  const wasUp = labIsUp();
  labUp();
  const foreign = foreignRouterTables();
  if (foreign.length) throw new Error(`the lab's routers carry rules of someone else's test (${foreign.join("; ")}); run again when it is done`);
  return wasUp;
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
export async function startPunchNode(opts: { port?: number; punchXpool?: number; sprayNatCones?: boolean; ip?: string; main?: string } = {}): Promise<PunchNode> {
  const home = mkdtempSync(join(tmpdir(), "findings-punch-node-"));
  const spray = opts.sprayNatCones === undefined ? "" : `punch_spray_nat_cones = ${opts.sprayNatCones}\n`;
  writeFileSync(join(home, "config.toml"), `punch_xpool = ${opts.punchXpool ?? 500}\n${spray}[stakes]\n"*" = "0xLABDEFAULT"\n"${PUNCH_KIND}" = ""\n"blockchain:bitcoin" = "bc1qlab"\n`);
  const port = opts.port ?? PUNCH_NODE_PORT;
  const ip = opts.ip ?? PUNCH_NODE_IP;
  const p = spawnLines(["ip", "netns", "exec", "fl-s1", BUN, opts.main ?? MAIN, "serve", "--json", "--host", ip, "--port", String(port), "--admin", "", "--public", "--home", home, "--log-level", "warn"]);
  try {
    const ready = await p.next((o) => o.event === "ready", 20_000);
    return {
      server: `${ip.includes(":") ? `[${ip}]` : ip}:${port}#${ready.publicKey as string}`,
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
