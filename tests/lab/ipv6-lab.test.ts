// IPv6 in the NAT lab (DESIGN §6, §7, §10): the three `findings serve` nodes on their IPv4 addresses and three more
// on their IPv6 addresses (meshed over IPv6); `findings probe` with servers of both families from the public client
// (public twice) and from the dual-stack homes (a port-restricted cone over IPv4, udp-firewall over IPv6: their IPv6
// is routed through a stateful firewall), each family in `families`; and `findings punch` over IPv6 through a node
// on fl-s1's IPv6 address: public ↔ home (direct) and home ↔ home (simultaneous through two stateful firewalls).
// Skips with the reason when namespaces cannot be built here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import type { ProbeReport } from "../../src/nat/probe-report.ts";
import { punchOnce, removeAppHomes, startPunchNode, startWaiter, type PunchNode, type Waiter } from "../../scripts/bench/punch-lab.ts";
import { LAB_CLIENTS, labDown, labUnavailableReason, labUp, type LabClass } from "./lab.ts";
import { LAB_SERVER_ADDRS, LAB_SERVER_ADDRS6, labIsUp, probeIn, startLabServers, waitForMesh, type LabServers } from "./lab-servers.ts";
import { holdLabLock } from "./lab-lock.ts";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`SKIPPED: the NAT lab cannot run here: ${unavailable}`);
// The lab is machine-wide: hold it for this whole file, so another run's lab tests wait (tests/lab/lab-lock.ts).
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

const V6_CLIENTS = LAB_CLIENTS.filter((c) => c.ip6 !== null);
const client = (cls: LabClass) => LAB_CLIENTS.find((c) => c.cls === cls)!;
/** The punch node's IPv6 address (fl-s1), on the punch port of scripts/bench/punch-lab.ts. */
const PUNCH_NODE_IP6 = "2001:db8:113::1";

describe.skipIf(unavailable !== null)("IPv6 in the NAT lab", () => {
  let wasUp = false;
  let servers: LabServers[] = [];
  let node: PunchNode | undefined;
  type DualReport = ProbeReport & { families: Record<"ipv4" | "ipv6", Partial<ProbeReport>> };
  const reports = new Map<LabClass, DualReport | null>();
  const waiters = new Map<LabClass, Waiter>();

  beforeAll(async () => {
    wasUp = labIsUp();
    labUp();
    servers = [await startLabServers(LAB_SERVER_ADDRS), await startLabServers(LAB_SERVER_ADDRS6)];
    await Promise.all(servers.map((s) => waitForMesh(s, { ownClass: true })));
    for (const c of V6_CLIENTS) reports.set(c.cls, (await probeIn(c.ns, [], 60_000, undefined, [...LAB_SERVER_ADDRS, ...LAB_SERVER_ADDRS6])).report as DualReport | null);
    await Promise.all(servers.map((s) => s.stop()));
    servers = [];
    node = await startPunchNode({ ip: PUNCH_NODE_IP6 });
    for (const c of V6_CLIENTS) waiters.set(c.cls, await startWaiter(c.cls, { server: node.server, nat: c.nat6!, name: `wait6-${c.cls}` }));
  }, 150_000);

  afterAll(async () => {
    await Promise.all([...waiters.values()].map((w) => w.stop()));
    await node?.stop();
    await Promise.all(servers.map((s) => s.stop()));
    removeAppHomes();
    if (!wasUp) labDown();
  }, 30_000);

  for (const c of V6_CLIENTS) {
    test(`probe of both families from ${c.ns}: ${c.nat} over IPv4 (top level and families.ipv4), ${c.nat6} over IPv6 at its own address`, () => {
      const r = reports.get(c.cls)!;
      expect(r).not.toBeNull();
      expect(r.nat).toBe(c.nat);
      expect(r.publicAddress).toStartWith(`${c.publicIp}:`);
      expect(r.evidence.find((e) => e.test === "decision")?.certain).toBe(true);
      expect(r.families.ipv4).toMatchObject({ nat: c.nat, publicAddress: r.publicAddress });
      const v6 = r.families.ipv6;
      expect({ nat: v6.nat, publicAddress: v6.publicAddress }).toEqual({ nat: c.nat6!, publicAddress: v6.localAddress! });
      expect(v6.publicAddress).toStartWith(`[${c.ip6}]:`);
    });
  }

  test("each app joined the node over IPv6 from its own address", () => {
    for (const c of V6_CLIENTS) expect(String(waiters.get(c.cls)!.hello.address)).toStartWith(`[${c.ip6}]:`);
  });

  const pairs: [LabClass, LabClass, string][] = [
    ["public", "prc-fw", "direct"],
    ["prc-fw", "public", "direct"],
    ["prc-fw", "prc-fw2", "simultaneous"],
    ["prc-fw2", "prc-fw", "simultaneous"],
  ];
  for (const [from, to, strategy] of pairs) {
    test(`punch over IPv6: ${from} (${client(from).nat6}) → ${to} (${client(to).nat6}) connects (${strategy})`, async () => {
      const waiter = waiters.get(to)!;
      const seen = waiter.lines.length;
      const run = await punchOnce(from, { server: node!.server, targetId: waiter.id, nat: client(from).nat6!, name: `punch6-${from}` });
      expect(run.result).toMatchObject({ connected: true, strategy });
      expect(String(run.result!.peer)).toStartWith(`[${client(to).ip6}]:`);
      await waiter.next((o) => o.attemptId === run.result!.attemptId && o.connected === true, 5_000, seen);
    }, 30_000);
  }
});
