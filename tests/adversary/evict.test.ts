// Extra addresses evict honest candidates: only an address a key check proved may displace another node
// from the candidate pool (src/mesh/candidate-pool.ts).
//
// A hostile node M lists its own address first (where it passes the key check) and an honest node
// H's address after it. Each address of a record is key-checked (a dual-stack node lists one per
// family), so the check at H's address fails and M's record is refused; H stays.
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
  test("a record that also lists an honest node's address fails its check and evicts nobody", async () => {
    const h = await net.honest(1, { public: true });
    const t = await net.honest(3, { peers: [net.peerOf(h)] });
    await until(() => candidateIds(t).includes(h.key.nodeId), { what: "T holds H" });

    const m = await net.hostile(2);
    const crafted = m.resign(m.record, { addresses: [m.record.addresses[0]!, create(NodeAddressSchema, addressOf(h))], seq: m.record.seq + 1n });
    m.serve(METHOD.mesh.peers, () => encodePeersAnswer([crafted]));
    m.serve(METHOD.mesh.keyCheck, (payload) => answerKeyCheck(m.key, payload, crafted));
    await m.dialMesh(t);

    await until(() => t.meshService.counters().mesh_key_checks_failed! > 0, { what: "T checked M's record at H's address" });
    expect(candidateIds(t)).toContain(h.key.nodeId);
    expect(candidateIds(t)).not.toContain(m.key.nodeId);
    expect(t.meshService.status().bans).toEqual([]);
  });
});
