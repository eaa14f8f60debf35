// Search answers from the mesh (src/mesh/mesh-search.ts): forwarded records must verify against their own key, key-checked copies are preferred, clock and format problems are nobody's lie.
import { describe, expect, test } from "bun:test";
import { clone, create } from "@bufbuild/protobuf";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import type { CoreLink } from "../../src/mesh/core-link.ts";
import { encodeFindAnswer } from "../../src/mesh/mesh-messages.ts";
import { createMeshSearch } from "../../src/mesh/mesh-search.ts";
import { buildRecord, recordNodeId, signRecord } from "../../src/mesh/record.ts";
import { EnvelopeSchema, NodeRecordSchema, Status, StakeSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";

const T0 = 1_800_000_000_000;
const KIND = "app:chat";

function recordOf(key: NodeKey, opts: { ip?: string; seq?: number; now?: number; stake?: string } = {}): NodeRecord {
  return buildRecord(key, {
    addresses: [{ ip: opts.ip ?? "198.51.100.1", udpPort: 7788, tcpPort: 7788 }],
    spki: "ab".repeat(32),
    kinds: [KIND],
    stakes: { [KIND]: opts.stake ?? "honest" },
    seq: opts.seq ?? 1,
    now: opts.now ?? T0,
  });
}

/** A mesh link whose peer answers every search with `records`. */
function linkAnswering(records: NodeRecord[]): CoreLink {
  const peer = generateNodeKey();
  return {
    peerNodeId: peer.nodeId,
    trust: "mesh",
    direction: "out",
    rttMs: 1,
    remote: { ip: "203.0.113.9", port: 7788 },
    socketRemote: { ip: "203.0.113.9", port: 7788 },
    local: { ip: "192.0.2.1", port: 7788 },
    openedAt: T0,
    isOpen: true,
    request: async () => create(EnvelopeSchema, { status: Status.OK, payload: encodeFindAnswer(records, []) }),
    close: () => {},
    onClose: () => () => {},
  };
}

function search(link: CoreLink, checked: NodeRecord[] = []) {
  const lies: string[] = [];
  const s = createMeshSearch({
    links: () => [link],
    local: () => [],
    contradicts: () => false,
    checked: (id) => checked.find((r) => recordNodeId(r) === id),
    onLie: (_link, why) => lies.push(why),
    count: () => {},
    now: () => T0,
  });
  return { s, lies };
}

const stakeOf = (records: NodeRecord[], key: NodeKey) => records.find((r) => recordNodeId(r) === key.nodeId)?.stakes[0]?.address;

describe("forwarded search answers", () => {
  test("a record re-signed by the peer that forwards it is a lie: nothing of that answer is used", async () => {
    const h = generateNodeKey();
    const relay = generateNodeKey();
    const hijacked = clone(NodeRecordSchema, recordOf(h));
    hijacked.stakes = [create(StakeSchema, { kind: KIND, address: "attacker" })];
    hijacked.seq += 1n;
    const { s, lies } = search(linkAnswering([recordOf(relay, { ip: "198.51.100.2" }), signRecord(hijacked, relay.privateKey)]));
    const result = await s.find(KIND);
    expect(result.records).toEqual([]);
    expect(lies).toEqual(["find answer carries a bad record: bad-signature"]);
  });

  test("our key-checked copy wins over a newer forwarded one that names another address", async () => {
    const h = generateNodeKey();
    const checkedCopy = recordOf(h, { seq: 1 });
    const moved = recordOf(h, { seq: 2, ip: "198.51.100.77", stake: "newer" });
    const { s, lies } = search(linkAnswering([moved]), [checkedCopy]);
    const result = await s.find(KIND);
    expect(stakeOf(result.records, h)).toBe("honest");
    expect(lies).toEqual([]);
  });

  test("a newer forwarded copy at the same proven address replaces ours (the node re-signed)", async () => {
    const h = generateNodeKey();
    const { s } = search(linkAnswering([recordOf(h, { seq: 2, stake: "newer" })]), [recordOf(h, { seq: 1 })]);
    expect(stakeOf((await s.find(KIND)).records, h)).toBe("newer");
  });

  test("expired records are dropped without blaming the peer", async () => {
    const h = generateNodeKey();
    const fresh = generateNodeKey();
    const { s, lies } = search(linkAnswering([recordOf(h, { now: T0 - 3 * 86_400_000 }), recordOf(fresh, { ip: "198.51.100.3" })]));
    const result = await s.find(KIND);
    expect(result.records.map(recordNodeId)).toEqual([fresh.nodeId]);
    expect(lies).toEqual([]);
  });
});
