// Findings nodes behind NAT (seed 001 §组网节点, §应用池) in the NAT lab: the three lab servers mesh in
// fl-s1..fl-s3; one `findings serve --peer 203.0.113.1:7788` runs behind the restricted cone and one behind the
// port-restricted cone. Neither passes the self-check; each measures its NAT class through the public nodes it
// learned, joins fl-s1's findings:main pool as an app, and the two punch each other and hold a direct link;
// over it they exchange public nodes' records through the mesh's checks, and fl-s1 learns from its NAT'd clients.
// Then a probe from the full-cone client with fl-s1 as its source server gets its NewHost probes from those two
// NAT'd members (their routers' addresses), asked by fl-s1 on their links, and is decided full cone.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { BUN, labDown, labUnavailableReason } from "./lab.ts";
import { LAB_SERVER_ADDRS, MAIN, probeIn, startLabServers, waitForMesh, type LabServers } from "./lab-servers.ts";
import { labUpUnshared, resetRestrictedConeSeen, spawnLines, type LineProc } from "../../scripts/bench/punch-lab.ts";
import { holdLabLock } from "./lab-lock.ts";
import { until } from "../wait.ts";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`SKIPPED: the NAT lab cannot run here: ${unavailable}`);
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

const ADMIN = "127.0.0.1:7789";

interface NatdNode {
  ns: string;
  id: string;
  home: string;
  proc: LineProc;
}

interface NatdStatus {
  node: { role?: string };
  mesh: { role: string };
  nat: { own: { nat: string } | null };
  natd: { kind: string; joined: string | null; address: string | null; nat: string | null; peers: { id: string; address: string; rttMs: number | null }[] };
  counters: Record<string, number>;
}

async function statusIn(ns: string): Promise<NatdStatus | null> {
  const r = Bun.spawn(["ip", "netns", "exec", ns, BUN, MAIN, "status", "--json", "--admin", ADMIN, "--timeout", "2"], { stdout: "pipe", stderr: "ignore" });
  const [out, code] = await Promise.all([new Response(r.stdout).text(), r.exited]);
  if (code !== 0) return null;
  try {
    return JSON.parse(out) as NatdStatus;
  } catch {
    return null;
  }
}

async function startNatdNode(ns: string): Promise<NatdNode> {
  const home = mkdtempSync(join(tmpdir(), `findings-natd-${ns}-`));
  const proc = spawnLines(["ip", "netns", "exec", ns, "env", "FINDINGS_ALLOW_SPECIAL_TARGETS=true", BUN, MAIN, "serve", "--json", "--peer", LAB_SERVER_ADDRS[0]!, "--admin", ADMIN, "--home", home, "--log-level", "info"]);
  const ready = await proc.next((o) => o.event === "ready", 20_000);
  return { ns, id: ready.id as string, home, proc };
}

describe.skipIf(unavailable !== null)("Findings nodes behind NAT in the lab", () => {
  let wasUp = false;
  let servers: LabServers;
  const nodes: NatdNode[] = [];

  beforeAll(async () => {
    wasUp = labUpUnshared();
    resetRestrictedConeSeen();
    servers = await startLabServers();
    await waitForMesh(servers);
  }, 90_000);

  afterAll(async () => {
    await Promise.all(nodes.map((n) => n.proc.stop()));
    for (const n of nodes) rmSync(n.home, { recursive: true, force: true });
    await servers?.stop();
    if (!wasUp) labDown();
  }, 30_000);

  test("two nodes behind different cone NATs find each other through a public node and hold a direct link", async () => {
    nodes.push(...(await Promise.all([startNatdNode("fl-c-rc"), startNatdNode("fl-c-prc")])));
    const [rc, prc] = nodes as [NatdNode, NatdNode];
    let last: (NatdStatus | null)[] = [];
    const linked = async () => {
      last = await Promise.all([statusIn(rc.ns), statusIn(prc.ns)]);
      const [a, b] = last;
      return a && b && a.natd.peers.some((p) => p.id === prc.id) && b.natd.peers.some((p) => p.id === rc.id) ? ([a, b] as const) : null;
    };
    const [a, b] = await until(linked, { what: "the two NAT'd nodes linked", timeoutMs: 120_000, intervalMs: 1_000 }).catch((err) => {
      throw new Error(`${(err as Error).message}; status: ${JSON.stringify(last.map((s) => s && { role: s.mesh.role, nat: s.nat.own?.nat ?? null, natd: s.natd }))}; stderr: ${nodes.map((n) => n.proc.stderr().slice(-600)).join(" | ")}`);
    });
    // Neither is reachable from outside: both stay mesh clients, measured their class, joined fl-s1's pool.
    for (const s of [a, b]) expect(s.mesh.role).toBe("client");
    expect(a.natd).toMatchObject({ kind: "findings:main", joined: LAB_SERVER_ADDRS[0], nat: "restricted-cone" });
    expect(b.natd).toMatchObject({ kind: "findings:main", joined: LAB_SERVER_ADDRS[0], nat: "port-restricted-cone" });
    // The direct link goes to the other's NAT, not through the public node.
    expect(a.natd.peers.find((p) => p.id === prc.id)!.address).toMatch(/^203\.0\.113\.103:\d+$/);
    expect(b.natd.peers.find((p) => p.id === rc.id)!.address).toMatch(/^203\.0\.113\.102:\d+$/);
    // The hello went both ways over the link, and the public node asked its NAT'd members too.
    await until(async () => ((await statusIn(rc.ns))?.counters.natd_hellosServed ?? 0) + ((await statusIn(prc.ns))?.counters.natd_hellosServed ?? 0) >= 2, { what: "node-link hellos served", timeoutMs: 20_000, intervalMs: 500 });
    const s1 = await servers.status(0);
    expect(s1!.counters.punch_joins).toBeGreaterThanOrEqual(2);
  }, 180_000);

  test("a NAT'd member of fl-s1's pool gives NewHost help: the probe's NewHost comes from the members' routers", async () => {
    if (nodes.length !== 2) throw new Error("the NAT'd nodes did not start");
    const members = ["203.0.113.102", "203.0.113.103"];
    const run = await probeIn("fl-c-fullc", [], 60_000, [BUN, MAIN], [LAB_SERVER_ADDRS[0]!]);
    if (!run.report) throw new Error(`probe printed no report (exit ${run.code}): ${run.stderr}`);
    const r = run.report;
    expect(r.nat).toBe("full-cone");
    expect(r.evidence.find((e) => e.test === "decision")).toMatchObject({ rule: "newhost-mapped-differs", certain: true });
    // fl-s1 asked its two members (one per IP, both slots): every NewHost probe that got in came from one of them.
    const from = r.evidence.filter((e) => e.test === "new-host" && typeof e.received === "string").map((e) => String(e.received).split(":")[0]!);
    expect(from.length).toBeGreaterThanOrEqual(1);
    for (const ip of from) expect(members).toContain(ip);
    const sent = (await Promise.all(nodes.map((n) => statusIn(n.ns)))).map((s) => s?.counters.natd_newhost_probes ?? 0);
    expect(sent.reduce((a, b) => a + b, 0)).toBeGreaterThanOrEqual(1);
  }, 90_000);
});
