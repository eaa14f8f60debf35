// Extra addresses evict honest candidates: a record is key-checked at one address, so only that address may displace another node from the candidate pool (src/mesh/candidate-pool.ts).
//
// A hostile node M lists its own address first (where it passes the key check) and an honest node
// H's address after it. Before: every listed address de-duplicated the pool, so M's record evicted
// H. Now only the proven address counts.
import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { encodePeersAnswer } from "../../src/mesh/mesh-messages.ts";
import { answerKeyCheck } from "../../src/mesh/record-check.ts";
import type { FindingsNode } from "../../src/node.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { NodeAddressSchema } from "../../src/wire/gen/findings_pb.ts";
import { until } from "../wait.ts";
import { addressOf, createAdversaryNet } from "./hostile-node.ts";

const net = await createAdversaryNet("evict");
afterEach(() => net.stopAll());

const candidateIds = (n: FindingsNode) => n.meshService.status().candidates.map((c) => c.id);

describe("unproven addresses displace nobody", () => {
  test("a checked record that also lists an honest node's address does not evict that node", async () => {
    const h = await net.honest(1, { public: true });
    const t = await net.honest(3, { peers: [net.peerOf(h)] });
    await until(() => candidateIds(t).includes(h.key.nodeId), { what: "T holds H" });

    const m = await net.hostile(2);
    const crafted = m.resign(m.record, { addresses: [m.record.addresses[0]!, create(NodeAddressSchema, addressOf(h))], seq: m.record.seq + 1n });
    m.serve(METHOD.mesh.peers, () => encodePeersAnswer([crafted]));
    m.serve(METHOD.mesh.keyCheck, (payload) => answerKeyCheck(m.key, payload, crafted));
    await m.dialMesh(t);

    await until(() => candidateIds(t).includes(m.key.nodeId), { what: "T checked and added M's record" });
    expect(candidateIds(t)).toContain(h.key.nodeId);
    expect(t.meshService.status().bans).toEqual([]);
  });
});
