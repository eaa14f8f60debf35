// Search answers from the mesh (src/mesh/mesh-search.ts): forwarded records must verify against their own key, key-checked copies are preferred, clock and format problems are nobody's lie.
import { describe, expect, test } from "bun:test";
import { clone, create } from "@bufbuild/protobuf";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import type { CoreLink } from "../../src/mesh/core-link.ts";
import { decodeFindAnswer, encodeFindAnswer } from "../../src/mesh/mesh-messages.ts";
import { MAX_RECORD_LIST_BYTES } from "../../src/mesh/mesh-service-constants.ts";
import { createMeshSearch } from "../../src/mesh/mesh-search.ts";
import { buildRecord, recordNodeId, signRecord } from "../../src/mesh/record.ts";
import { encodeFindRequest, FIND_ENOUGH, FIND_FANOUT, MAX_ANSWERS_PER_NET, mergeAnswers, newFindRequest } from "../../src/mesh/search.ts";
import { seeded } from "../../src/contracts/index.ts";
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

describe("answer size", () => {
  /** A valid record near the record size limit: 32 long kinds, each with a stake address. */
  function bigRecord(key: NodeKey, i: number): NodeRecord {
    const kinds = [KIND, ...Array.from({ length: 31 }, (_, k) => `app:${String(k).padStart(2, "0")}${"x".repeat(40)}`)];
    return buildRecord(key, {
      addresses: [{ ip: `198.51.100.${1 + (i % 250)}`, udpPort: 7788, tcpPort: 7788 }],
      spki: "ab".repeat(32),
      kinds,
      stakes: Object.fromEntries(kinds.map((k) => [k, "s".repeat(20)])),
      seq: 1,
      now: T0,
    });
  }

  test("a merged answer of many large records is cut to fit what the asker decodes, best records first", () => {
    const records = Array.from({ length: 40 }, (_, i) => bigRecord(generateNodeKey(), i));
    const bytes = encodeFindAnswer(records, []);
    expect(bytes.length).toBeLessThanOrEqual(MAX_RECORD_LIST_BYTES);
    const kept = decodeFindAnswer(bytes).records;
    expect(kept.length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThan(records.length);
    expect(kept.map(recordNodeId)).toEqual(records.slice(0, kept.length).map(recordNodeId));
  });

  test("an answer over the size limit is dropped without calling the forwarder a liar", async () => {
    const link = { ...linkAnswering([]), request: async () => create(EnvelopeSchema, { status: Status.OK, payload: new Uint8Array(MAX_RECORD_LIST_BYTES + 1) }) };
    const { s, lies } = search(link);
    expect((await s.find(KIND)).records).toEqual([]);
    expect(lies).toEqual([]);
  });
});

describe("the flood is bounded", () => {
  /** A searcher with `n` links counting the requests each gets, and `own` records of the kind. */
  function fanned(n: number, own: NodeRecord[]) {
    const asked: number[] = Array(n).fill(0);
    const links = asked.map((_, i) => {
      const l = linkAnswering([]);
      return { ...l, request: async (...args: Parameters<CoreLink["request"]>) => (asked[i]!++, l.request(...args)) };
    });
    const s = createMeshSearch({ links: () => links, local: () => own, contradicts: () => false, onLie: () => {}, count: () => {}, now: () => T0, rand: seeded(3) });
    return { s, asked };
  }

  test(`a search goes to at most ${FIND_FANOUT} links, drawn at random, with one hop less`, async () => {
    const { s, asked } = fanned(24, []);
    await s.find(KIND);
    expect(asked.reduce((a, b) => a + b, 0)).toBe(FIND_FANOUT);
    await s.find(KIND);
    expect(asked.filter((x) => x > 0).length).toBeGreaterThan(FIND_FANOUT);
  });

  test(`a forwarder holding records from ${FIND_ENOUGH} network groups answers without forwarding; the asker always forwards`, async () => {
    // One network group (/16) each: 198.51/16, 203.0/16, 192.0/16.
    const own = ["198.51.100.1", "203.0.113.1", "192.0.2.1"].slice(0, FIND_ENOUGH).map((ip) => recordOf(generateNodeKey(), { ip }));
    const forwarded = () => encodeFindRequest(newFindRequest(KIND, { hops: 2 }));
    const { s, asked } = fanned(8, own);
    const reply = await s.onMeshRequest(forwarded(), linkAnswering([]));
    expect(decodeFindAnswer(reply.payload!).records.length).toBe(FIND_ENOUGH);
    expect(asked.every((x) => x === 0)).toBe(true);
    await s.find(KIND);
    expect(asked.some((x) => x > 0)).toBe(true);
    // Records from one network count once.
    const sameNet = fanned(8, own.map((r, i) => recordOf(generateNodeKey(), { ip: `198.51.100.${i + 20}` })));
    await sameNet.s.onMeshRequest(forwarded(), linkAnswering([]));
    expect(sameNet.asked.some((x) => x > 0)).toBe(true);
    // So do records from several /24s of one /16 (keys rented in a few /24s of one provider).
    const sameGroup = fanned(8, own.map((r, i) => recordOf(generateNodeKey(), { ip: `198.51.${100 + i}.1` })));
    await sameGroup.s.onMeshRequest(forwarded(), linkAnswering([]));
    expect(sameGroup.asked.some((x) => x > 0)).toBe(true);
  });

  test(`an answer holds at most ${MAX_ANSWERS_PER_NET} records from one network`, () => {
    const many = Array.from({ length: 10 }, (_, i) => recordOf(generateNodeKey(), { ip: `198.51.100.${i + 1}` }));
    const other = recordOf(generateNodeKey(), { ip: "203.0.113.1" });
    expect(mergeAnswers(many, [other]).length).toBe(MAX_ANSWERS_PER_NET + 1);
  });
});
