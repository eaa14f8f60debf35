// Listed servers through the mesh (src/share/holding.ts, src/share/share-find.ts): holdings signed by the node
// that lists the entries, checked at every hop; the search travels with a hop budget, cuts loops, stays bounded.
import { describe, expect, test } from "bun:test";
import { clone, create } from "@bufbuild/protobuf";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import type { CoreLink } from "../../src/mesh/core-link.ts";
import { buildRecord } from "../../src/mesh/record.ts";
import { checkHolding, signHolding } from "../../src/share/holding.ts";
import { createShareFind, MAX_SHARE_HOLDINGS, type ShareFind } from "../../src/share/share-find.ts";
import { decodeMessage, encodeMessage } from "../../src/wire/codec.ts";
import { EnvelopeSchema, Status, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { ShareEntrySchema, ShareFindAnswerSchema, ShareFindRequestSchema, ShareHoldingSchema } from "../../src/wire/gen/punch_pb.ts";

const T0 = 1_800_000_000_000;
const KIND = "app:web";
const RID = new Uint8Array(16).fill(7);

function recordOf(key: NodeKey, i: number, kinds = [KIND]): NodeRecord {
  return buildRecord(key, { addresses: [{ ip: `198.51.100.${i}`, udpPort: 7788, tcpPort: 7788 }], spki: "ab".repeat(32), kinds, seq: 1, now: T0 });
}

const entry = (i: number) => ({ ip: `203.0.113.${i}`, port: 8000 + i, verifiedAtMs: T0 - 1000 });

describe("a signed holding", () => {
  const key = generateNodeKey();
  const holder = recordOf(key, 1);
  const good = () => signHolding(key, { holder, kind: KIND, requestId: RID, entries: [entry(1), entry(2)], now: T0 });

  test("verifies for its search and names its holder", () => {
    expect(checkHolding(good(), { kind: KIND, requestId: RID, now: T0 })).toEqual({ ok: true, nodeId: key.nodeId });
  });

  test("an entry changed, added or dropped on the way breaks the signature: whoever relays it lies", () => {
    type H = ReturnType<typeof good>;
    const changes = [(h: H) => void (h.entries[0]!.port = 22), (h: H) => void h.entries.push(clone(ShareEntrySchema, h.entries[0]!)), (h: H) => void h.entries.pop()];
    for (const change of changes) {
      const h = clone(ShareHoldingSchema, good());
      change(h);
      expect(checkHolding(h, { kind: KIND, requestId: RID, now: T0 })).toMatchObject({ ok: false, lie: true });
    }
  });

  test("re-signed by a relay under the holder's record: a lie", () => {
    const relay = generateNodeKey();
    const forged = signHolding(relay, { holder, kind: KIND, requestId: RID, entries: [entry(9)], now: T0 });
    expect(checkHolding(forged, { kind: KIND, requestId: RID, now: T0 })).toMatchObject({ ok: false, lie: true, why: expect.stringMatching(/signature/) });
  });

  test("another search, a stale one, or a holder that does not serve the kind: dropped without blame", () => {
    expect(checkHolding(good(), { kind: KIND, requestId: new Uint8Array(16), now: T0 })).toMatchObject({ ok: false, lie: false });
    expect(checkHolding(good(), { kind: KIND, requestId: RID, now: T0 + 120_000 })).toMatchObject({ ok: false, lie: false });
    const other = signHolding(key, { holder: recordOf(key, 1, ["app:other"]), kind: KIND, requestId: RID, entries: [entry(1)], now: T0 });
    expect(checkHolding(other, { kind: KIND, requestId: RID, now: T0 })).toMatchObject({ ok: false, lie: false });
  });

  test("more than six entries is refused even when signed (a holder's answer is bounded)", () => {
    const h = good();
    for (let i = 3; i <= 8; i++) h.entries.push(clone(ShareEntrySchema, h.entries[0]!));
    h.signature = new Uint8Array(64);
    expect(checkHolding(h, { kind: KIND, requestId: RID, now: T0 })).toMatchObject({ ok: false, lie: true });
  });
});

/** A node of a memory mesh: its share search, its record and entries, its links. */
interface TestNode {
  key: NodeKey;
  find: ShareFind;
  links: CoreLink[];
  lies: string[];
  asked: number;
}

function node(i: number, entries: ReturnType<typeof entry>[]): TestNode {
  const key = generateNodeKey();
  const rec = recordOf(key, i);
  const n: TestNode = { key, links: [], lies: [], asked: 0, find: undefined as unknown as ShareFind };
  n.find = createShareFind({ nodeKey: key, links: () => n.links, ownRecord: () => rec, local: () => entries, onLie: (_l, why) => n.lies.push(why), now: () => T0 });
  return n;
}

function linkTo(from: TestNode, to: TestNode): CoreLink {
  const back = { peerNodeId: from.key.nodeId, isOpen: true, socketRemote: { ip: "192.0.2.1", port: 1 } } as CoreLink;
  return {
    peerNodeId: to.key.nodeId,
    trust: "mesh",
    direction: "out",
    rttMs: 1,
    remote: { ip: "192.0.2.2", port: 1 },
    socketRemote: { ip: "192.0.2.2", port: 1 },
    local: { ip: "192.0.2.1", port: 1 },
    openedAt: T0,
    isOpen: true,
    async request(_method, payload) {
      to.asked++;
      const reply = await to.find.onMeshRequest(payload!, back);
      return create(EnvelopeSchema, { status: "status" in reply ? reply.status : Status.OK, payload: "payload" in reply ? reply.payload : new Uint8Array(0) });
    },
    close: () => {},
    onClose: () => () => {},
  };
}

function connect(a: TestNode, b: TestNode): void {
  a.links.push(linkTo(a, b));
  b.links.push(linkTo(b, a));
}

describe("share.find through a mesh", () => {
  test("a chain a–b–c: a finds c's entries two hops away, as c signed them; one hop is not enough", async () => {
    const a = node(1, []);
    const b = node(2, []);
    const c = node(3, [entry(3)]);
    connect(a, b);
    connect(b, c);
    const found = await a.find.search(KIND, 2);
    expect(found.map((f) => f.nodeId)).toEqual([c.key.nodeId]);
    expect(found[0]!.holding.entries.map((e) => `${e.ip}:${e.port}`)).toEqual(["203.0.113.3:8003"]);
    expect(await a.find.search(KIND, 1)).toEqual([]);
    expect([a, b, c].flatMap((n) => n.lies)).toEqual([]);
  });

  test("a loop a–b–c–a is cut by the request id: each node answers once per search", async () => {
    const a = node(1, []);
    const b = node(2, [entry(2)]);
    const c = node(3, [entry(3)]);
    connect(a, b);
    connect(b, c);
    connect(c, a);
    const found = await a.find.search(KIND, 3);
    expect(found.map((f) => f.nodeId).sort()).toEqual([b.key.nodeId, c.key.nodeId].sort());
    // b and c are each asked by a and by each other; the second asks answer empty.
    expect(b.asked + c.asked).toBeLessThanOrEqual(4);
  });

  test("an answer holds at most MAX_SHARE_HOLDINGS holdings, one per holder", async () => {
    const a = node(1, []);
    const hub = node(2, []);
    connect(a, hub);
    for (let i = 0; i < MAX_SHARE_HOLDINGS + 4; i++) connect(hub, node(10 + i, [entry(10 + i)]));
    const found = await a.find.search(KIND, 2);
    expect(found).toHaveLength(MAX_SHARE_HOLDINGS);
    expect(new Set(found.map((f) => f.nodeId)).size).toBe(MAX_SHARE_HOLDINGS);
  });

  test("bad requests are answered, not thrown", async () => {
    const a = node(1, []);
    const link = linkTo(node(2, []), a);
    expect((await a.find.onMeshRequest(new Uint8Array([0xff, 0xff]), link)).status).toBe(Status.BAD_REQUEST);
    const badId = encodeMessage(ShareFindRequestSchema, { requestId: new Uint8Array(3), kind: KIND, hops: 1 });
    expect((await a.find.onMeshRequest(badId, link)).status).toBe(Status.BAD_REQUEST);
    const badKind = encodeMessage(ShareFindRequestSchema, { requestId: RID, kind: "no spaces allowed", hops: 1 });
    expect((await a.find.onMeshRequest(badKind, link)).status).toBe(Status.BAD_REQUEST);
    const ok = await a.find.onMeshRequest(encodeMessage(ShareFindRequestSchema, { requestId: RID, kind: KIND, hops: 0 }), link);
    expect(decodeMessage(ShareFindAnswerSchema, (ok as { payload: Uint8Array }).payload, "answer").holdings).toEqual([]);
  });
});
