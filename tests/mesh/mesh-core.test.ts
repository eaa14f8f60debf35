// The mesh core over in-memory links on a fake clock (src/mesh/mesh-service.ts, memory-net.ts; DESIGN
// §3, §5; seed 001 §组网规则, §公钥广播与验证): real records, signatures, key checks and self-checks,
// many nodes in one process. A network converges, refills lost links, switches at the switch
// interval, and bans a liar.
import { clone } from "@bufbuild/protobuf";
import { afterEach, describe, expect, test } from "bun:test";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { decodeSelfCheckAnswer, encodePeersAnswer, encodeSelfCheckAnswer } from "../../src/mesh/mesh-messages.ts";
import { answerSelfCheck } from "../../src/mesh/self-check.ts";
import type { RpcHandler } from "../../src/rpc/policy.ts";
import { MESH_CLOSE } from "../../src/mesh/mesh-service-constants.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { open } from "../rpc/open-policy.ts";
import { recordNodeId, signRecord } from "../../src/mesh/record.ts";
import { Status } from "../../src/wire/codec.ts";
import { NodeRecordSchema } from "../../src/wire/gen/findings_pb.ts";
import { ipOf, PORT, Sim, type SimNode } from "./memory-mesh.ts";

let sim: Sim;
afterEach(async () => {
  await sim.close();
});

/** Node 0 is --public; the others know only its address and pass the self-check. */
async function network(n: number, init: Parameters<Sim["add"]>[1] = {}, seed = 1): Promise<SimNode[]> {
  sim = new Sim(seed);
  const first = await sim.add(0, { ...init, public: true });
  const out = [first];
  for (let i = 1; i < n; i++) out.push(await sim.add(i, { ...init, peers: [`${ipOf(0)}:${PORT}`] }));
  return out;
}

/** Every node serves with mesh_out links to nodes of the group, one per peer, each seen from both ends. */
function fullMesh(nodes: SimNode[], meshOut: number): boolean {
  const ids = new Set(nodes.map((n) => n.key.nodeId));
  const byId = new Map(nodes.map((n) => [n.key.nodeId, n.mesh.status()]));
  return nodes.every((n) => {
    const st = byId.get(n.key.nodeId)!;
    const peers = st.mesh.links.map((l) => l.peer);
    return (
      st.role === "service" &&
      st.mesh.out === meshOut &&
      new Set(peers).size === peers.length &&
      st.mesh.links.every((l) => ids.has(l.peer) && byId.get(l.peer)!.mesh.links.some((x) => x.peer === n.key.nodeId && x.direction !== l.direction))
    );
  });
}

describe("a network of mesh cores over memory links", () => {
  test("converges: every node serves, shares candidates and fills mesh_out", async () => {
    // Switching lets the first node, whose every peer linked to it, get outgoing links of its own.
    const nodes = await network(8, { switchIntervalMs: 10_000 });
    await sim.until("full mesh", () => fullMesh(nodes, 3), 120_000);
    for (const n of nodes) {
      const st = n.mesh.status();
      // Candidates were shared: every node knows every other one, each proven by a key check.
      expect(st.candidates.map((c) => c.id).sort()).toEqual(nodes.filter((x) => x !== n).map((x) => x.key.nodeId).sort());
      expect(st.bans).toEqual([]);
      if (n !== nodes[0]) expect(st.selfCheck).toMatchObject({ reachable: true, observedIp: ipOf(n.i) });
      expect(st.counters.events.checksKeyFailed).toBe(0);
      // The simulator's cheap summary says what the status says.
      expect(n.mesh.summary()).toEqual({
        role: st.role,
        serving: st.serving,
        out: st.mesh.out,
        maxOut: st.mesh.maxOut,
        candidates: st.candidates.length,
        links: st.mesh.links.map((l) => ({ peer: l.peer, direction: l.direction })),
      });
      expect(n.mesh.candidateKinds().sort((x, y) => x.id.localeCompare(y.id))).toEqual(st.candidates.map((c) => ({ id: c.id, kinds: c.kinds })).sort((x, y) => x.id.localeCompare(y.id)));
    }
  });

  test("a newcomer merges its helper's record on the helper's proof and self-checks with nodes the help brought, not the helper", async () => {
    const nodes = await network(8);
    await sim.clock.advance(30_000);
    const seed = nodes[0]!;
    const seedIn = () => ({ ...seed.mesh.status().counters.messagesIn });
    const before = seedIn();
    const late = await sim.add(20, { peers: [`${ipOf(0)}:${PORT}`] });
    await sim.until("the newcomer serves", () => late.mesh.role === "service", 30_000);
    const after = seedIn();
    const st = late.mesh.status();
    expect(st.candidates.map((c) => c.id)).toContain(seed.key.nodeId);
    expect(st.counters.events.checksByProof).toBeGreaterThanOrEqual(1);
    // The seed was asked for help once and neither key-checked nor asked for the self-check.
    expect((after[METHOD.mesh.peers] ?? 0) - (before[METHOD.mesh.peers] ?? 0)).toBe(1);
    expect(after[METHOD.mesh.keyCheck] ?? 0).toBe(before[METHOD.mesh.keyCheck] ?? 0);
    expect(after[METHOD.mesh.selfCheck] ?? 0).toBe(before[METHOD.mesh.selfCheck] ?? 0);
    expect(st.selfCheck).toMatchObject({ reachable: true, observedIp: ipOf(20) });
    expect(st.selfCheck!.results.map((r) => r.checker)).not.toContain(`${ipOf(0)}:${PORT}`);
  });

  test("on a wildcard host the newcomer's IP is the one its configured peers saw: self-checkers from the pool that claim another cannot set it", async () => {
    const nodes = await network(8);
    await sim.clock.advance(30_000);
    // Every node but the seed reaches the asker (real dial-backs) and then lies about the IP it saw.
    for (const n of nodes.slice(1)) {
      const handler: RpcHandler = async (payload, ctx) => {
        const real = await answerSelfCheck({ udp: n.net.udp, links: n.net.links }, payload, ctx.remote.ip);
        const said = decodeSelfCheckAnswer(real.payload!);
        return { status: real.status, payload: encodeSelfCheckAnswer({ ...said, observedIp: "10.9.9.9" }) };
      };
      n.net.udp.router.add(METHOD.mesh.selfCheck, open(handler, { transports: ["quic"] }), { replace: true });
    }
    const late = await sim.add(20, { host: "0.0.0.0", peers: [`${ipOf(0)}:${PORT}`] });
    await sim.until("the newcomer serves", () => late.mesh.role === "service", 30_000);
    expect(late.mesh.status().selfCheck).toMatchObject({ reachable: true, observedIp: "10.9.9.9" });
    expect(late.mesh.record()!.addresses[0]!.ip).toBe(ipOf(20));
  });

  test("a lost node's links are refilled from other candidates", async () => {
    const nodes = await network(8);
    await sim.clock.advance(30_000);
    // A node one of its dialers misses and can replace: that dialer is not linked with every other node.
    const dialsOutTo = (n: SimNode, g: SimNode) => n.mesh.status().mesh.links.some((l) => l.peer === g.key.nodeId && l.direction === "out");
    const canRefill = (n: SimNode) => n.mesh.status().mesh.links.length < nodes.length - 1;
    const gone = nodes.slice(1).find((g) => nodes.some((n) => n !== g && dialsOutTo(n, g) && canRefill(n)))!;
    expect(gone).toBeDefined();
    const rest = nodes.filter((n) => n !== gone);
    const outBefore = new Map(rest.map((n) => [n, n.mesh.status().mesh.out]));
    const lost = rest.filter((n) => n.mesh.status().mesh.links.some((l) => l.peer === gone.key.nodeId && l.direction === "out"));
    expect(lost.length).toBeGreaterThan(0);
    await sim.kill(gone);
    await sim.clock.advance(1_000);
    for (const n of rest) expect(n.mesh.status().mesh.links.map((l) => l.peer)).not.toContain(gone.key.nodeId);
    // Refilled within a second (a dial to the dead node may fail first), not at the next switch:
    // back to the count before, unless the node is now linked with every node left.
    for (const n of rest) {
      const st = n.mesh.status();
      if (st.mesh.links.length < rest.length - 1) expect(st.mesh.out).toBe(outBefore.get(n)!);
    }
    expect(lost.filter((n) => n.mesh.status().mesh.out === outBefore.get(n)).length).toBeGreaterThan(0);
  });

  test("1–2 outgoing links are switched at the switch interval, not before", async () => {
    const nodes = await network(8, { meshOut: 2, switchIntervalMs: 20_000 });
    const switches = (n: SimNode) => n.mesh.status().counters.events.switches ?? 0;
    await sim.clock.advance(19_500);
    for (const n of nodes) expect(switches(n)).toBe(0);
    await sim.clock.advance(1_000);
    expect(nodes.filter((n) => switches(n) === 1).length).toBeGreaterThanOrEqual(nodes.length / 2);
    // The next switch comes one interval (±20 %) later, not before.
    await sim.clock.advance(14_000);
    for (const n of nodes) expect(switches(n)).toBeLessThanOrEqual(1);
    await sim.clock.advance(12_000);
    expect(nodes.filter((n) => switches(n) >= 2).length).toBeGreaterThanOrEqual(nodes.length / 2);
  });

  test("a node that shares a record whose key check fails is not banned (it may be an honest relay); the record is merged nowhere", async () => {
    const honest = await network(5);
    await sim.clock.advance(20_000);
    const victim = honest[2]!;
    const genuine = victim.mesh.record()!;
    const fake = generateNodeKey();
    const forged = clone(NodeRecordSchema, genuine);
    forged.publicKey = fake.publicKey;
    const signed = signRecord(forged, fake.privateKey);

    // The sharer serves its own genuine record (it passes the key check) and a record signed by a key
    // that is not at the address it names.
    const sharer = await sim.add(9, { public: true, peers: [`${ipOf(0)}:${PORT}`] }, (node) => {
      node.net.links.router.add(METHOD.mesh.peers, open(() => encodePeersAnswer([node.mesh.record()!, signed]), { transports: ["wss"] }), { replace: true });
    });
    await sim.until("the record's key check failed", () => honest.some((n) => (n.mesh.status().counters.events["checksKeyFailed"] ?? 0) >= 1), 30_000);
    await sim.clock.advance(1_000);
    for (const n of honest) {
      const st = n.mesh.status();
      expect(st.candidates.map((c) => c.id)).not.toContain(recordNodeId(signed));
      if (n !== victim) expect(st.candidates.map((c) => c.id)).toContain(victim.key.nodeId);
      expect(st.bans).toEqual([]);
    }
    expect(honest.some((n) => n.mesh.status().candidates.some((c) => c.id === sharer.key.nodeId))).toBe(true);
  });

  test("a node that shares a record it re-signed (a bad signature) is banned and its link closed", async () => {
    const honest = await network(5);
    await sim.clock.advance(20_000);
    const victim = honest[2]!;
    const closes: number[] = [];
    const liar = await sim.add(9, { public: true, peers: [`${ipOf(0)}:${PORT}`] }, (node) => {
      const hijacked = clone(NodeRecordSchema, victim.mesh.record()!);
      hijacked.stakes = [];
      hijacked.seq += 1n;
      const resigned = signRecord(hijacked, node.key.privateKey);
      node.net.links.router.add(METHOD.mesh.peers, open(() => encodePeersAnswer([node.mesh.record()!, resigned]), { transports: ["wss"] }), { replace: true });
      node.net.links.onMeshLink((l) => void l.onClose((info) => closes.push(info.code)));
    });
    await sim.until("the liar banned", () => honest.some((n) => n.mesh.status().bans.some((b) => b.target === liar.key.nodeId)), 30_000);
    await sim.clock.advance(1_000);
    expect(closes).toContain(MESH_CLOSE.banned.code);
    for (const n of honest) {
      const st = n.mesh.status();
      const ban = st.bans.find((b) => b.target === liar.key.nodeId);
      if (!ban) continue;
      expect(ban.reason).toContain("bad-signature");
      expect(st.mesh.links.map((l) => l.peer)).not.toContain(liar.key.nodeId);
    }
  });

  test("a --client-only node learns candidates but serves nothing and refuses mesh links", async () => {
    const nodes = await network(3);
    await sim.clock.advance(10_000);
    const client = await sim.add(5, { clientOnly: true, peers: [`${ipOf(0)}:${PORT}`] });
    await sim.clock.advance(10_000);
    const st = client.mesh.status();
    expect(st.role).toBe("client");
    expect(client.mesh.record()).toBeUndefined();
    expect(st.candidates.map((c) => c.id).sort()).toEqual(nodes.map((n) => n.key.nodeId).sort());
    const link = await nodes[1]!.net.links.dialMesh(client.net.address, client.key.publicKey);
    expect((await link.closed).code).toBe(MESH_CLOSE.notServing.code);
    // Nobody holds a link to it, and its record is in nobody's pool.
    for (const n of nodes) expect(n.mesh.status().candidates.map((c) => c.id)).not.toContain(client.key.nodeId);
  });

  test("a peer whose peers answer does not decode is banned and its link closed", async () => {
    const nodes = await network(2);
    await sim.clock.advance(5_000);
    const bad = await sim.add(7, { public: true }, (node) => {
      node.net.links.router.add(METHOD.mesh.peers, open(() => new Uint8Array([0xff, 0xff, 0xff]), { transports: ["wss"] }), { replace: true });
    });
    const link = await bad.net.links.dialMesh(nodes[0]!.net.address, nodes[0]!.key.publicKey);
    expect((await link.closed).code).toBe(MESH_CLOSE.banned.code);
    const ban = nodes[0]!.mesh.status().bans.find((b) => b.target === bad.key.nodeId)!;
    expect(ban.reason).toContain("undecodable peers answer");
  });

  test("the service adds the mesh routes to its node's router at start, with their policies, and removes them at stop", async () => {
    const [a, b] = (await network(2)) as [SimNode, SimNode];
    await sim.clock.advance(5_000);
    const served = (t: "wss" | "quic") => Object.values(METHOD.mesh).filter((m) => b.net.router.has(m, t)).sort();
    // (mesh.hello and mesh.accept are the link service's, which a memory network does not run.)
    expect(served("wss")).toEqual([METHOD.mesh.find, METHOD.mesh.keyCheck, METHOD.mesh.peers, METHOD.mesh.selfCheckEcho].sort());
    expect(served("quic")).toEqual([METHOD.mesh.find, METHOD.mesh.keyCheck, METHOD.mesh.peers, METHOD.mesh.selfCheck, METHOD.mesh.selfCheckEcho].sort());

    // mesh.find is for mesh peers only; mesh.peers is open to a first contact.
    const first = await a.net.links.dialUntrusted(b.net.address);
    expect((await first.request(METHOD.mesh.find)).status).toBe(Status.REFUSED);
    expect((await first.request(METHOD.mesh.peers)).status).toBe(Status.OK);
    // A self-check request larger than a small message never reaches the handler.
    const udp = await a.net.udp.dial(b.net.address);
    expect((await udp.request(METHOD.mesh.selfCheck, new Uint8Array(300))).status).toBe(Status.BAD_REQUEST);
    expect(b.net.router.stats().refused).toMatchObject({ [METHOD.mesh.find]: { trust: 1 }, [METHOD.mesh.selfCheck]: { payload: 1 } });

    await b.mesh.stop();
    expect([...served("wss"), ...served("quic")]).toEqual([]);
    expect((await first.request(METHOD.mesh.peers)).status).toBe(Status.BAD_REQUEST);
  });
});
