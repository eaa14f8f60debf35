// Re-signed records that hijack reward addresses: a mesh peer takes an honest node's record, keeps its key, puts its own stake address and a top seq, re-signs, and answers searches with it (src/mesh/record.ts, mesh-search.ts, mesh-client.ts).
//
// A record must verify against its own public key (XEdDSA by the node's X25519 key), so the
// rewrite fails everywhere: at the node that forwards a search, and at an app that asks the
// hostile node directly.
import { afterEach, describe, expect, test } from "bun:test";
import { create } from "@bufbuild/protobuf";
import { askFind } from "../../src/mesh/mesh-client.ts";
import { encodeFindAnswer } from "../../src/mesh/mesh-messages.ts";
import { MAX_RECORD_SEQ } from "../../src/mesh/record.ts";
import type { FindingsNode } from "../../src/node.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { StakeSchema } from "../../src/wire/gen/findings_pb.ts";
import type { NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { until } from "../wait.ts";
import { createAdversaryNet, type HostileNode } from "./hostile-node.ts";

const KIND = "app:chat";
const net = await createAdversaryNet("hijack");
afterEach(() => net.stopAll());

const candidateIds = (n: FindingsNode) => n.meshService.status().candidates.map((c) => c.id);

/** H's record with M's stake address and the top seq, re-signed by M. */
function hijack(m: HostileNode, victim: NodeRecord): NodeRecord {
  return m.resign(victim, { stakes: [create(StakeSchema, { kind: KIND, address: "attacker-stake" })], seq: BigInt(MAX_RECORD_SEQ) });
}

/** Which stake group the app was told `nodeId` belongs to. */
function groupOf(groups: { stakeAddress: string; members: { nodeId: string }[] }[], nodeId: string): string | undefined {
  return groups.find((g) => g.members.some((x) => x.nodeId === nodeId))?.stakeAddress;
}

describe("a re-signed record cannot move a node into another server group", () => {
  test("a search forwarded through a hostile mesh peer still shows the honest node under its own stake", async () => {
    const h = await net.honest(1, { public: true, stakes: { [KIND]: "honest-stake" } });
    const t = await net.honest(3, { peers: [net.peerOf(h)] });
    await until(() => candidateIds(t).includes(h.key.nodeId), { what: "T holds H's checked record" });
    const m = await net.hostile(2, { stakes: { [KIND]: "attacker-stake" } });
    const forged = hijack(m, h.meshService.record()!);
    m.serve(METHOD.mesh.find, () => encodeFindAnswer([m.record, forged], []));
    await m.dialMesh(t);
    await until(() => t.meshService.status().mesh.links.some((l) => l.peer === m.key.nodeId), { what: "M linked to T" });

    const found = await askFind({ ip: t.tls.host, port: t.udp.port }, KIND);
    expect(groupOf(found.groups, h.key.nodeId)).toBe("honest-stake");
    expect(found.records.find((r) => Buffer.from(r.publicKey).equals(Buffer.from(h.key.publicKey)))!.stakes[0]!.address).toBe("honest-stake");
    // M forwarded a record it could have checked itself: T bans it.
    await until(() => t.meshService.status().bans.some((b) => b.target === m.key.nodeId), { what: "T bans M" });
  });

  test("an app asking the hostile node directly refuses the rewritten record", async () => {
    const h = await net.honest(1, { public: true, stakes: { [KIND]: "honest-stake" } });
    const m = await net.hostile(2, { stakes: { [KIND]: "attacker-stake" } });
    const forged = hijack(m, h.meshService.record()!);
    m.serve(METHOD.mesh.find, () => encodeFindAnswer([m.record, forged], []), ["quic"]);

    const found = await askFind({ ip: m.host, port: m.node.udp.port }, KIND);
    expect(groupOf(found.groups, h.key.nodeId)).toBeUndefined();
    expect(found.rejected).toBe(1);
    expect(groupOf(found.groups, m.key.nodeId)).toBe("attacker-stake");
  });
});
