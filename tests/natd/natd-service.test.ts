// NAT'd-node service over real QUIC on loopback: two nodes that are mesh clients join a node's findings:main pool,
// punch each other and hold a direct link; node-link.hello carries records both ways into the mesh's checks
// (here a recorder), and the pool node asks a joining NAT'd member for its records.
import { afterEach, expect, setDefaultTimeout, test } from "bun:test";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { buildRecord, nextRecordSeq, recordNodeId } from "../../src/mesh/record.ts";
import { createNatdService, type NatdService } from "../../src/natd/natd-service.ts";
import type { NatdMesh } from "../../src/natd/natd-parts.ts";
import { createPunchService } from "../../src/punch/punch-service.ts";
import { createUdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { encodeMessage, NodeLinkHelloSchema, Status, type NodeRecord } from "../../src/wire/index.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { until } from "../wait.ts";

setDefaultTimeout(30_000);
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
});

const recordOf = (key: NodeKey, port: number, ip = "127.0.0.1") =>
  buildRecord(key, { addresses: [{ ip, udpPort: port, tcpPort: port }], spki: new Uint8Array(32), kinds: [], stakes: {}, identityId: "", seq: nextRecordSeq(undefined, Date.now()), now: Date.now() });

/** A mesh stand-in: a fixed role and candidates, and what `learn` was given by whom. */
function fakeMesh(role: NatdMesh["role"], candidates: NodeRecord[], own: NodeRecord[]) {
  const learned: Array<{ from: string; ids: string[] }> = [];
  const mesh: NatdMesh = {
    role,
    candidates: () => candidates,
    shareable: () => own,
    learn: async (records, sharer) => {
      learned.push({ from: sharer.id!, ids: records.map(recordNodeId) });
      return records.length;
    },
    isBanned: () => false,
  };
  return { mesh, learned };
}

test("two NAT'd nodes meet in a node's findings pool, link directly and exchange records; the node asks its members", async () => {
  const nodeKey = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey }, { host: "127.0.0.1", port: 0 });
  let publicSide: NatdService | undefined;
  const service = createPunchService(
    { udp: ep, nodeKey, onMember: (m, link) => void publicSide?.askMember(link, m.nodeId) },
    { stakes: { "findings:main": "" }, userId: "" },
  );
  await ep.start();
  service.start();
  cleanups.push(() => ep.stop(), () => service.stop());
  const nodeRecord = recordOf(nodeKey, ep.port);
  const elsewhere = [recordOf(generateNodeKey(), 1111, "203.0.113.7"), recordOf(generateNodeKey(), 2222, "203.0.113.8")];
  const pub = fakeMesh("service", [], [nodeRecord]);
  publicSide = createNatdService({ nodeKey, mesh: pub.mesh, ownNat: () => "public" }, { network: "main", links: 0, shareCount: 4, host: "127.0.0.1" });

  const natd = (i: number) => {
    const key = generateNodeKey();
    const m = fakeMesh("client", [nodeRecord], [elsewhere[i]!]);
    // Both on one host: "public" keeps the pool from treating them as two apps behind one NAT.
    const s = createNatdService({ nodeKey: key, mesh: m.mesh, ownNat: () => "public" }, { network: "main", links: 1, shareCount: 4, host: "127.0.0.1", tickMs: 200 });
    cleanups.push(() => s.stop());
    return { key, s, learned: m.learned };
  };
  const a = natd(0);
  const b = natd(1);
  await a.s.start();
  await b.s.start();
  await until(() => a.s.status().peers.some((p) => p.id === b.key.nodeId) && b.s.status().peers.some((p) => p.id === a.key.nodeId), { what: "a direct link both ways", timeoutMs: 20_000 });
  expect(a.s.status()).toMatchObject({ kind: "findings:main", joined: `127.0.0.1:${ep.port}`, nat: "public" });
  expect(service.pool.byId(a.key.nodeId, "findings:main")).toBeDefined();
  // Over the punched link each learned the other's public node, credited to that peer.
  await until(() => a.learned.some((l) => l.from === b.key.nodeId) && b.learned.some((l) => l.from === a.key.nodeId), { what: "records both ways" });
  expect(a.learned.find((l) => l.from === b.key.nodeId)!.ids).toEqual([recordNodeId(elsewhere[1]!)]);
  expect(b.learned.find((l) => l.from === a.key.nodeId)!.ids).toEqual([recordNodeId(elsewhere[0]!)]);
  // The pool node learned from its NAT'd members, and they from it.
  await until(() => pub.learned.length >= 2, { what: "the pool node to learn from its members" });
  expect(new Set(pub.learned.map((l) => l.from))).toEqual(new Set([a.key.nodeId, b.key.nodeId]));
  expect(a.learned.some((l) => l.from === nodeKey.nodeId && l.ids[0] === recordNodeId(nodeRecord))).toBe(true);
});

test("node-link.hello from a stranger on a NAT'd node's socket is refused and teaches it nothing", async () => {
  const nodeKey = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey }, { host: "127.0.0.1", port: 0 });
  const service = createPunchService({ udp: ep, nodeKey }, { stakes: { "findings:main": "" }, userId: "" });
  await ep.start();
  service.start();
  cleanups.push(() => ep.stop(), () => service.stop());
  const m = fakeMesh("client", [recordOf(nodeKey, ep.port)], []);
  const s = createNatdService({ nodeKey: generateNodeKey(), mesh: m.mesh, ownNat: () => "public" }, { network: "main", links: 1, shareCount: 4, host: "127.0.0.1", tickMs: 200 });
  cleanups.push(() => s.stop());
  await s.start();
  const address = await until(() => s.status().address, { what: "the NAT'd node to join" });
  const stranger = createUdpClient({}, { host: "127.0.0.1", port: 0 });
  await stranger.start();
  cleanups.push(() => stranger.stop());
  const link = await stranger.dial({ ip: "127.0.0.1", port: Number(address.split(":")[1]) });
  const hello = encodeMessage(NodeLinkHelloSchema, { network: "main", records: [recordOf(generateNodeKey(), 3333, "203.0.113.9")] });
  const answer = await link.request(METHOD.nodeLink.hello, hello);
  expect(answer.status).toBe(Status.REFUSED);
  expect(answer.error).toMatch(/only from a punched Findings node or the pool node/);
  expect(m.learned).toEqual([]);
  expect(s.counters().hellosRefused).toBe(1);
});
