// Test-side handle on the NAT lab: topology, lab.sh up/down/check, and JSON-line agents inside namespaces (DESIGN §10).
// The topology here must match tests/lab/lab.sh; lab-smoke.test.ts proves both agree by exercising it.

import { spawnSync, type Subprocess } from "bun";
import { existsSync } from "node:fs";
import { resolve } from "node:path";
import type { NatClassName } from "../../src/nat/class.ts";

export const LAB_SCRIPT = resolve(import.meta.dir, "lab.sh");
const AGENT_SCRIPT = resolve(import.meta.dir, "udp-agent.ts");
const REPO_BUN = resolve(import.meta.dir, "../../node_modules/.bin/bun");

/** The repo's Bun (what the product runs on); the running Bun when the repo has none. */
export const BUN = existsSync(REPO_BUN) ? REPO_BUN : process.execPath;

export interface LabServer {
  ns: string;
  ips: readonly string[];
  /** IPv6 addresses (2001:db8:113::/64, the bridge). */
  ips6: readonly string[];
}

export const LAB_SERVERS: readonly LabServer[] = [
  { ns: "fl-s1", ips: ["203.0.113.1", "203.0.113.11"], ips6: ["2001:db8:113::1", "2001:db8:113::11"] },
  { ns: "fl-s2", ips: ["203.0.113.2", "203.0.113.12"], ips6: ["2001:db8:113::2", "2001:db8:113::12"] },
  { ns: "fl-s3", ips: ["203.0.113.3"], ips6: ["2001:db8:113::3"] },
];

/** Clients behind bare Linux NATs (and the public one), then behind firewalled home routers (`-fw`). */
export type LabClass = "public" | "fullc" | "rc" | "prc" | "sym" | "udpfw" | "udpblk" | "fullc-fw" | "rc-fw" | "prc-fw" | "sym-fw" | "quic-fw" | "prc-fw2";

/** How a router treats unsolicited packets addressed to itself: "bare" delivers them to its own stack, which
 *  leaves a conntrack entry that re-maps the next outbound flow to that peer; "firewalled" drops them in its
 *  input chain (OpenWrt's WAN zone) and leaves nothing. */
export type RouterKind = "bare" | "firewalled";

export interface LabClient {
  cls: LabClass;
  /** The NAT class `findings probe` must report for this client. */
  nat: NatClassName;
  ns: string;
  /** Router namespace; null for the public client on the bridge. */
  router: string | null;
  /** The client's own address. */
  localIp: string;
  /** The address servers see (the router's WAN address, or the client's own when there is no NAT). */
  publicIp: string;
  /** null for the public client. */
  routerKind: RouterKind | null;
  /** The client's IPv6 address (no NAT: servers see it too) and the class its IPv6 must be reported as;
   *  null when the client has no IPv6. */
  ip6: string | null;
  nat6: NatClassName | null;
}

const v4Only = { ip6: null, nat6: null } as const;
const behind = (cls: LabClass, nat: NatClassName, n: number, routerKind: RouterKind) =>
  ({ cls, nat, ns: `fl-c-${cls}`, router: `fl-r-${cls}`, localIp: `10.99.${n}.2`, publicIp: `203.0.113.${100 + n}`, routerKind, ...v4Only }) satisfies LabClient;

export const LAB_CLIENTS: readonly LabClient[] = [
  { cls: "public", nat: "public", ns: "fl-c-public", router: null, localIp: "203.0.113.100", publicIp: "203.0.113.100", routerKind: null, ip6: "2001:db8:113::100", nat6: "public" },
  behind("fullc", "full-cone", 1, "bare"),
  behind("rc", "restricted-cone", 2, "bare"),
  behind("prc", "port-restricted-cone", 3, "bare"),
  behind("sym", "symmetric", 4, "bare"),
  { cls: "udpfw", nat: "udp-firewall", ns: "fl-c-udpfw", router: "fl-r-udpfw", localIp: "198.51.100.2", publicIp: "198.51.100.2", routerKind: "bare", ...v4Only },
  behind("udpblk", "udp-blocked", 6, "bare"),
  behind("fullc-fw", "full-cone", 7, "firewalled"),
  behind("rc-fw", "restricted-cone", 8, "firewalled"),
  // The dual-stack home: IPv4 behind a port-restricted cone, IPv6 routed through a stateful firewall.
  { ...behind("prc-fw", "port-restricted-cone", 9, "firewalled"), ip6: "2001:db8:109::2", nat6: "udp-firewall" },
  behind("sym-fw", "symmetric", 10, "firewalled"),
  behind("quic-fw", "quic-only", 11, "firewalled"),
  // A second home behind a firewalled port-restricted cone: the commonest real pair.
  { ...behind("prc-fw2", "port-restricted-cone", 12, "firewalled"), ip6: "2001:db8:112::2", nat6: "udp-firewall" },
];

/** The clients the lab had first (one per class, bare routers); the firewalled ones come after them. */
export const BARE_LAB_CLIENTS: readonly LabClient[] = LAB_CLIENTS.filter((c) => c.routerKind !== "firewalled");

function runLab(args: string[]): { code: number; out: string; err: string } {
  // The environment is passed on purpose: Bun's spawn does not see later changes to process.env, and
  // FL_NATLAB_LOCK_HELD (tests/lab/lab-lock.ts) is set after start-up.
  const r = spawnSync(["bash", LAB_SCRIPT, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env } });
  return { code: r.exitCode ?? -1, out: r.stdout.toString(), err: r.stderr.toString().trim() };
}

/** null when this host can build the lab; otherwise why it cannot (not root, no nft, no namespaces …). */
export function labUnavailableReason(): string | null {
  const r = runLab(["check"]);
  if (r.code === 0) return null;
  return r.err || `lab.sh check exited ${r.code}`;
}

/** Brings the lab up (idempotent); throws with lab.sh's message when that fails. */
export function labUp(options: { udpTimeoutS?: number } = {}): void {
  const args = ["up"];
  if (options.udpTimeoutS !== undefined) args.push("--udp-timeout", String(options.udpTimeoutS));
  const r = runLab(args);
  if (r.code !== 0) throw new Error(`lab.sh up failed (${r.code}): ${r.err}`);
}

export function labDown(): void {
  const r = runLab(["down"]);
  if (r.code !== 0) throw new Error(`lab.sh down failed (${r.code}): ${r.err}`);
}

export interface AgentDatagram {
  from: string;
  data: string;
}

/** A udp-agent.ts process inside one namespace. */
export interface Agent {
  ns: string;
  call<T = Record<string, unknown>>(op: string, args?: Record<string, unknown>, timeoutMs?: number): Promise<T>;
  close(): Promise<void>;
}

const AGENT_CALL_TIMEOUT_MS = 10_000;

export async function startAgent(ns: string): Promise<Agent> {
  const proc: Subprocess<"pipe", "pipe", "pipe"> = Bun.spawn(["ip", "netns", "exec", ns, BUN, AGENT_SCRIPT], {
    stdin: "pipe",
    stdout: "pipe",
    stderr: "pipe",
  });
  const pending = new Map<number, (msg: Record<string, unknown>) => void>();
  let ready: () => void = () => {};
  let failReady: (e: Error) => void = () => {};
  const readyP = new Promise<void>((res, rej) => {
    ready = res;
    failReady = rej;
  });
  let nextId = 1;

  void (async () => {
    const decoder = new TextDecoder();
    let buf = "";
    for await (const chunk of proc.stdout) {
      buf += decoder.decode(chunk, { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        const msg = JSON.parse(line) as Record<string, unknown>;
        if (msg.ready) ready();
        const waiter = pending.get(msg.id as number);
        if (waiter) {
          pending.delete(msg.id as number);
          waiter(msg);
        }
      }
    }
    failReady(new Error(`agent in ${ns} exited before it was ready: ${await new Response(proc.stderr).text()}`));
  })();

  const startTimer = setTimeout(() => failReady(new Error(`agent in ${ns} did not start in time`)), AGENT_CALL_TIMEOUT_MS);
  try {
    await readyP;
  } finally {
    clearTimeout(startTimer);
  }

  return {
    ns,
    call<T>(op: string, args: Record<string, unknown> = {}, timeoutMs = AGENT_CALL_TIMEOUT_MS): Promise<T> {
      const id = nextId++;
      return new Promise<T>((res, rej) => {
        const t = setTimeout(() => {
          pending.delete(id);
          rej(new Error(`agent ${ns}: ${op} timed out`));
        }, timeoutMs);
        pending.set(id, (msg) => {
          clearTimeout(t);
          if (typeof msg.error === "string") rej(new Error(`agent ${ns}: ${op}: ${msg.error}`));
          else res(msg as T);
        });
        proc.stdin.write(JSON.stringify({ id, op, ...args }) + "\n");
        proc.stdin.flush();
      });
    },
    async close(): Promise<void> {
      try {
        proc.stdin.end();
      } catch {
        // already closed
      }
      const exited = await Promise.race([proc.exited.then(() => true), Bun.sleep(2_000).then(() => false)]);
      if (!exited) proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
