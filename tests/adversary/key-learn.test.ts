// Attack: an app dials a node by address only and learns its key from the network (src/mesh/mesh-client.ts
// learnNodeKey). Whoever answers at the address may lie about the record: replay another node's genuine record,
// alter one, hand out one for another address, or send junk. Only a node that proves the record's key by a
// sealed key check at the dialled address is believed — even when a trusted node vouches for the record.
import { afterEach, describe, expect, test } from "bun:test";
import { clone, create } from "@bufbuild/protobuf";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { learnNodeKey } from "../../src/mesh/mesh-client.ts";
import { encodePeersAnswer } from "../../src/mesh/mesh-messages.ts";
import { answerKeyCheck } from "../../src/mesh/record-check.ts";
import { buildRecord } from "../../src/mesh/record.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { NodeRecordSchema, StakeSchema, Status, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { open } from "../rpc/open-policy.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

/** A QUIC endpoint on loopback whose mesh.peers and mesh.key-check answers are chosen by the test. */
async function endpoint(): Promise<UdpEndpoint> {
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: generateNodeKey() }, { host: "127.0.0.1", port: 0 });
  await ep.start();
  cleanups.push(() => ep.stop());
  return ep;
}

function recordAt(key: NodeKey, port: number, ip = "127.0.0.1"): NodeRecord {
  return buildRecord(key, { addresses: [{ ip, udpPort: port, tcpPort: port }], spki: "ab".repeat(32), kinds: ["app:web"], stakes: { "*": "honest" }, seq: 1, now: Date.now() });
}

/** The node at `ep` answers mesh.peers with `records` (or raw bytes) and key checks as the owner of `keyOf`. */
function serve(ep: UdpEndpoint, peers: NodeRecord[] | Uint8Array, keyCheck: { key: NodeKey; record: NodeRecord }): void {
  ep.router.add(METHOD.mesh.peers, open(() => ({ status: Status.OK, payload: peers instanceof Uint8Array ? peers : encodePeersAnswer(peers) })));
  ep.router.add(METHOD.mesh.keyCheck, open((payload) => answerKeyCheck(keyCheck.key, payload, keyCheck.record)));
}

const target = (ep: UdpEndpoint) => ({ ip: "127.0.0.1", port: ep.port });
const failure = (p: Promise<unknown>) => p.then(() => "learned", (e: unknown) => String(e));

describe("learning a node's key from the network", () => {
  test("the honest case: the node's own record, its signature, and its key check at the dialled address", async () => {
    const ep = await endpoint();
    const honest = generateNodeKey();
    const rec = recordAt(honest, ep.port);
    serve(ep, [rec], { key: honest, record: rec });
    const learned = await learnNodeKey(target(ep), { timeoutMs: 3000 });
    expect(learned.nodeId).toBe(honest.nodeId);
    expect(learned.publicKey).toEqual(honest.publicKey);
  });

  test("a node replaying another node's genuine record for its address fails the key check: nothing learned", async () => {
    const ep = await endpoint();
    const victim = generateNodeKey();
    const liar = generateNodeKey();
    const genuine = recordAt(victim, ep.port);
    serve(ep, [genuine], { key: liar, record: recordAt(liar, ep.port) });
    expect(await failure(learnNodeKey(target(ep), { timeoutMs: 3000 }))).toMatch(/key check was refused \(unauthenticated/i);
  });

  test("an altered record does not verify; a genuine record of another address is not this node's", async () => {
    const ep = await endpoint();
    const victim = generateNodeKey();
    const altered = clone(NodeRecordSchema, recordAt(victim, ep.port));
    altered.stakes = [create(StakeSchema, { kind: "*", address: "attacker" })];
    serve(ep, [altered], { key: victim, record: altered });
    expect(await failure(learnNodeKey(target(ep), { timeoutMs: 3000 }))).toMatch(/does not verify \(bad-signature\)/);

    const ep2 = await endpoint();
    const elsewhere = recordAt(victim, ep2.port + 1);
    serve(ep2, [elsewhere], { key: victim, record: elsewhere });
    expect(await failure(learnNodeKey(target(ep2), { timeoutMs: 3000 }))).toMatch(/not the address dialled/);
  });

  test("junk or nothing in the peers answer is a clear refusal, not a crash", async () => {
    const ep = await endpoint();
    const k = generateNodeKey();
    serve(ep, new Uint8Array([0x0a, 0xff, 0xff, 0xff, 0x0f]), { key: k, record: recordAt(k, ep.port) });
    expect(await failure(learnNodeKey(target(ep), { timeoutMs: 3000 }))).toMatch(/Error/);
    const ep2 = await endpoint();
    serve(ep2, [], { key: k, record: recordAt(k, ep2.port) });
    expect(await failure(learnNodeKey(target(ep2), { timeoutMs: 3000 }))).toMatch(/gave no record/);
  });

  test("a record vouched for by a trusted node is still proven at the address: an impostor there is refused", async () => {
    const honest = generateNodeKey();
    const impostorEp = await endpoint();
    const genuine = recordAt(honest, impostorEp.port);
    const impostor = generateNodeKey();
    serve(impostorEp, [recordAt(impostor, impostorEp.port)], { key: impostor, record: recordAt(impostor, impostorEp.port) });
    // The trusted node knows the honest record (its answer is over a pinned link: the app bootstrap).
    const trustedKey = generateNodeKey();
    const trusted = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: trustedKey }, { host: "127.0.0.1", port: 0 });
    await trusted.start();
    cleanups.push(() => trusted.stop());
    trusted.router.add(METHOD.mesh.peers, open(() => ({ status: Status.OK, payload: encodePeersAnswer([genuine]) })));
    const via = [{ ip: "127.0.0.1", port: trusted.port, publicKey: trustedKey.publicKey }];
    expect(await failure(learnNodeKey(target(impostorEp), { timeoutMs: 3000, via }))).toMatch(/key check was refused/);
  });
});
