// Findings in the NAT lab (DESIGN §10): three `findings serve` nodes in fl-s1/fl-s2/fl-s3 on their 203.0.113.x
// addresses, meshed through --peer, and `findings probe` run inside a client namespace. Used by tests/nat and by
// scripts/bench/probe-lab.ts.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import type { ProbeReport } from "../../src/nat/probe-report.ts";
import { BUN, LAB_SCRIPT } from "./lab.ts";
import { until } from "../wait.ts";
import { cleanEnv } from "../helpers.ts";

export const MAIN = resolve(import.meta.dir, "../../src/main.ts");
export const LAB_PORT = 7788;
export const LAB_SERVER_ADDRS = ["203.0.113.1", "203.0.113.2", "203.0.113.3"].map((ip) => `${ip}:${LAB_PORT}`);
/** The same servers on their IPv6 addresses (the bridge's 2001:db8:113::/64). */
export const LAB_SERVER_ADDRS6 = ["2001:db8:113::1", "2001:db8:113::2", "2001:db8:113::3"].map((ip) => `[${ip}]:${LAB_PORT}`);
const SERVER_NS = ["fl-s1", "fl-s2", "fl-s3"];
/** Admin endpoint inside each server namespace (each has its own loopback); the IPv6 set uses ADMIN6. */
const ADMIN = "127.0.0.1:7789";
const ADMIN6 = "127.0.0.1:7787";

export interface LabServers {
  readonly homes: string[];
  /** GET /status of server i (via `findings status` inside its namespace). */
  status(i: number): Promise<LabNodeStatus | null>;
  stop(): Promise<void>;
}

export interface LabNodeStatus {
  node: { id: string; nat: string | null };
  mesh: { mesh: { links: unknown[] } };
  nat: { own: { nat: string; certain: boolean } | null; lastSelfProbeError: string | null };
  counters: Record<string, number>;
}

/** What the harness keeps of a spawned process. */
interface Proc {
  readonly stdout: ReadableStream<Uint8Array>;
  readonly exited: Promise<number>;
  readonly exitCode: number | null;
  kill(signal?: NodeJS.Signals | number): void;
}

async function readReady(proc: Proc, what: string, logFile: string, timeoutMs: number): Promise<void> {
  const reader = proc.stdout.getReader();
  const decoder = new TextDecoder();
  let buf = "";
  const deadline = Date.now() + timeoutMs;
  try {
    while (Date.now() < deadline) {
      const r = await Promise.race([reader.read(), Bun.sleep(deadline - Date.now()).then(() => null)]);
      if (!r || r.done) break;
      buf += decoder.decode(r.value, { stream: true });
      if (buf.includes('"event":"ready"')) return;
    }
  } finally {
    reader.releaseLock();
  }
  throw new Error(`${what} did not print its ready line: ${await Bun.file(logFile).text().catch(() => "")}`);
}

/** Empties the restricted-cone router's box-wide "seen" set (tests/lab/lab.sh `rc`). Every host any lab user's
 *  client in fl-c-rc sent to stays admitted for 120 s, so another run (or another tool, e.g. the classic STUN client
 *  contacting its alternate IP) would open the router to hosts this run never contacted. */
export function resetRestrictedConeSeen(): void {
  for (const router of ["fl-r-rc", "fl-r-rc-fw"]) Bun.spawnSync(["ip", "netns", "exec", router, "nft", "flush", "set", "ip", "fl_lab", "seen"], { stdout: "ignore", stderr: "ignore" });
}

/** Makes the port-restricted-cone router QUIC-only while `fn` runs: a table of its own drops every forwarded UDP
 *  datagram whose first payload byte has bits 7–6 clear (STUN, SN probes, hellos), so only QUIC (fixed bit set)
 *  passes (DESIGN §2 demux, §6 `quic-only`). The lab has no QUIC-only router; the table is removed afterwards. */
export async function withQuicOnlyRouter<T>(fn: () => Promise<T>): Promise<T> {
  const rules = 'table ip fl_quiconly { chain forward_q { type filter hook forward priority -10; policy accept; meta l4proto udp @th,64,2 0 drop; }; }';
  const add = Bun.spawnSync(["ip", "netns", "exec", "fl-r-prc", "nft", rules], { stderr: "pipe" });
  if (add.exitCode !== 0) throw new Error(`cannot make fl-r-prc QUIC-only: ${add.stderr.toString()}`);
  try {
    return await fn();
  } finally {
    Bun.spawnSync(["ip", "netns", "exec", "fl-r-prc", "nft", "delete", "table", "ip", "fl_quiconly"]);
  }
}

const ROUTERS = ["fl-r-fullc", "fl-r-rc", "fl-r-prc", "fl-r-sym", "fl-r-udpfw", "fl-r-udpblk"];
const UDP_TIMEOUT_KEYS = ["net.netfilter.nf_conntrack_udp_timeout", "net.netfilter.nf_conntrack_udp_timeout_stream"];

/** Reads the routers' conntrack UDP timeouts; the returned function puts them back (`lab.sh up --udp-timeout` sets
 *  both keys to one value, which other lab tests may not expect). */
export function saveUdpTimeouts(): () => void {
  const saved: [string, string, string][] = [];
  for (const ns of ROUTERS) {
    for (const key of UDP_TIMEOUT_KEYS) {
      const r = Bun.spawnSync(["ip", "netns", "exec", ns, "sysctl", "-n", key], { stdout: "pipe", stderr: "ignore" });
      if (r.exitCode === 0) saved.push([ns, key, r.stdout.toString().trim()]);
    }
  }
  return () => {
    for (const [ns, key, value] of saved) Bun.spawnSync(["ip", "netns", "exec", ns, "sysctl", "-qw", `${key}=${value}`], { stdout: "ignore", stderr: "ignore" });
  };
}

/** True when lab.sh says the lab is complete. */
export function labIsUp(): boolean {
  return Bun.spawnSync(["bash", LAB_SCRIPT, "status"], { stdout: "ignore", stderr: "ignore", env: { ...process.env } }).exitCode === 0;
}

/** Starts the three nodes: fl-s1 --public, fl-s2 and fl-s3 --peer 203.0.113.1 (with `addrs`
 *  LAB_SERVER_ADDRS6: the same over IPv6). */
export async function startLabServers(addrs: readonly string[] = LAB_SERVER_ADDRS): Promise<LabServers> {
  const admin = addrs === LAB_SERVER_ADDRS6 ? ADMIN6 : ADMIN;
  const homes = SERVER_NS.map((ns) => mkdtempSync(join(tmpdir(), `findings-lab-${ns}-`)));
  const procs: Proc[] = [];
  const spawn = (i: number, extra: string[]) => {
    const ip = addrs[i]!.slice(0, addrs[i]!.lastIndexOf(":")).replace(/^\[(.*)\]$/, "$1");
    const args = ["serve", "--json", "--host", ip, "--port", String(LAB_PORT), "--admin", admin, "--home", homes[i]!, "--log-level", "warn", ...extra];
    // The node's terminal log goes to a file in its home (a pipe nobody reads would fill and stall the node).
    const logFile = join(homes[i]!, "stderr.log");
    // The lab's addresses are documentation and private ranges, which a public node refuses to probe.
    const env = { ...cleanEnv(), FINDINGS_ALLOW_SPECIAL_TARGETS: "true" };
    const proc = Bun.spawn(["ip", "netns", "exec", SERVER_NS[i]!, BUN, MAIN, ...args], { stdin: "ignore", stdout: "pipe", stderr: Bun.file(logFile), env });
    procs.push(proc);
    return readReady(proc, SERVER_NS[i]!, logFile, 20_000);
  };
  const servers: LabServers = {
    homes,
    async status(i) {
      const r = Bun.spawn(["ip", "netns", "exec", SERVER_NS[i]!, BUN, MAIN, "status", "--json", "--admin", admin, "--timeout", "2"], { stdout: "pipe", stderr: "ignore", env: cleanEnv() });
      const [out, code] = await Promise.all([new Response(r.stdout).text(), r.exited]);
      if (code !== 0) return null;
      try {
        return JSON.parse(out) as LabNodeStatus;
      } catch {
        return null;
      }
    },
    async stop() {
      for (const p of procs) p.kill("SIGTERM");
      await Promise.race([Promise.all(procs.map((p) => p.exited)), Bun.sleep(3_000)]);
      for (const p of procs) if (p.exitCode === null) p.kill("SIGKILL");
      await Promise.all(procs.map((p) => p.exited));
      for (const h of homes) rmSync(h, { recursive: true, force: true });
    },
  };
  try {
    await spawn(0, ["--public"]);
    await Promise.all([spawn(1, ["--peer", addrs[0]!]), spawn(2, ["--peer", addrs[0]!])]);
  } catch (err) {
    await servers.stop();
    throw err;
  }
  return servers;
}

/** Waits until every node has 2 mesh links and (with `ownClass`) has measured its own NAT class. */
export async function waitForMesh(servers: LabServers, opts: { ownClass?: boolean; timeoutMs?: number } = {}): Promise<LabNodeStatus[]> {
  let last: (LabNodeStatus | null)[] = [];
  const meshed = async () => {
    last = await Promise.all([0, 1, 2].map((i) => servers.status(i)));
    return last.every((s) => s && s.mesh.mesh.links.length >= 2 && (!opts.ownClass || s.node.nat !== null)) ? (last as LabNodeStatus[]) : null;
  };
  return until(meshed, { what: "the lab nodes meshed", timeoutMs: opts.timeoutMs ?? 40_000, intervalMs: 500 }).catch(() => {
    throw new Error(`lab nodes did not mesh in time: ${JSON.stringify(last.map((s) => s && { links: s.mesh.mesh.links.length, nat: s.node.nat, err: s.nat?.lastSelfProbeError }))}`);
  });
}

export interface ProbeRun {
  report: ProbeReport | null;
  code: number;
  stderr: string;
  /** Wall time of the whole `findings probe` process, ms (Bun start-up included). */
  wallMs: number;
}

/** Runs `findings probe --json --server … [extra]` inside namespace `ns`; `command` is how `findings` is started
 *  (default: the repo's Bun on src/main.ts; a compiled binary is one path). */
export async function probeIn(ns: string, extra: string[] = [], timeoutMs = 120_000, command: string[] = [BUN, MAIN], servers: readonly string[] = LAB_SERVER_ADDRS): Promise<ProbeRun> {
  const args = ["probe", "--json", ...servers.flatMap((a) => ["--server", a]), ...extra];
  const t0 = performance.now();
  const proc = Bun.spawn(["ip", "netns", "exec", ns, ...command, ...args], { stdout: "pipe", stderr: "pipe", env: cleanEnv() });
  const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  clearTimeout(timer);
  const wallMs = performance.now() - t0;
  let report: ProbeReport | null = null;
  try {
    report = JSON.parse(out) as ProbeReport;
  } catch {
    report = null;
  }
  return { report, code, stderr: err, wallMs };
}
