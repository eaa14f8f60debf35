// Search by kind: request checks, de-duplication window, hop limit, answer merging (DESIGN §8).
import { describe, expect, test } from "bun:test";
import { create, toBinary } from "@bufbuild/protobuf";
import { NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { FindRequestSchema } from "../../src/wire/gen/mesh_pb.ts";
import {
  createSeenRequests,
  encodeFindRequest,
  MAX_SEARCH_ANSWERS,
  DEFAULT_SEARCH_HOPS,
  MAX_SEARCH_HOPS,
  mergeAnswers,
  newFindRequest,
  nextHop,
  parseFindRequest,
  recordsOfKind,
} from "../../src/mesh/search.ts";
import { recordNodeId } from "../../src/mesh/record.ts";

const T0 = 1_700_000_000_000;
const rid = (b: number) => new Uint8Array(16).fill(b);

function rec(keyByte: number, seq = 1, kinds: string[] = ["app:chat"]): NodeRecord {
  return create(NodeRecordSchema, { publicKey: new Uint8Array(32).fill(keyByte), seq: BigInt(seq), kinds });
}

describe("find requests", () => {
  test("a new request has a 16-byte random id, the default hop budget, and survives encoding", () => {
    const req = newFindRequest("blockchain:bitcoin", { random: () => rid(5) });
    expect(req.requestId).toEqual(rid(5));
    expect(req.hops).toBe(DEFAULT_SEARCH_HOPS);
    expect(newFindRequest("a:b", { hops: 9 }).hops).toBe(MAX_SEARCH_HOPS);
    const back = parseFindRequest(encodeFindRequest(req));
    expect(back.ok).toBe(true);
    if (back.ok) expect(back.request.kind).toBe("blockchain:bitcoin");
  });

  test("hop counts and answer caps from the network are clamped to our limits", () => {
    const bytes = toBinary(FindRequestSchema, create(FindRequestSchema, { requestId: rid(1), kind: "app:chat", hops: 1000, maxAnswers: 100_000 }));
    const res = parseFindRequest(bytes);
    expect(res.ok).toBe(true);
    if (res.ok) {
      expect(res.request.hops).toBe(MAX_SEARCH_HOPS);
      expect(res.request.maxAnswers).toBe(MAX_SEARCH_ANSWERS);
    }
    const zero = parseFindRequest(toBinary(FindRequestSchema, create(FindRequestSchema, { requestId: rid(1), kind: "app:chat" })));
    expect(zero.ok).toBe(true);
    if (zero.ok) expect(zero.request.maxAnswers).toBe(MAX_SEARCH_ANSWERS);
  });

  test("bad ids, bad kinds, oversize and random bytes are typed failures", () => {
    const enc = (init: object) => toBinary(FindRequestSchema, create(FindRequestSchema, init));
    expect(parseFindRequest(enc({ requestId: rid(1).slice(1), kind: "app:chat" }))).toMatchObject({ ok: false, reason: "bad-request-id" });
    expect(parseFindRequest(enc({ requestId: rid(1), kind: "" }))).toMatchObject({ ok: false, reason: "bad-kind" });
    expect(parseFindRequest(enc({ requestId: rid(1), kind: "app chat" }))).toMatchObject({ ok: false, reason: "bad-kind" });
    expect(parseFindRequest(new Uint8Array(257))).toMatchObject({ ok: false, reason: "too-large" });
    let seed = 3;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 300; i++) expect(parseFindRequest(Uint8Array.from({ length: i % 100 }, rnd)).ok).toBe(false);
  });

  test("nextHop decrements the hops and refuses to forward at 0", () => {
    let req: ReturnType<typeof newFindRequest> | null = newFindRequest("app:chat", { hops: 2 });
    const seen: number[] = [];
    while (req) {
      seen.push(req.hops);
      req = nextHop(req);
    }
    expect(seen).toEqual([2, 1, 0]);
  });

  test("nextHop clamps an oversized hop count before decrementing and keeps id and kind", () => {
    const req = create(FindRequestSchema, { requestId: rid(2), kind: "app:chat", hops: 99, maxAnswers: 5 });
    const next = nextHop(req)!;
    expect(next.hops).toBe(MAX_SEARCH_HOPS - 1);
    expect(next.requestId).toEqual(rid(2));
    expect(next.maxAnswers).toBe(5);
    expect(req.hops).toBe(99); // the original is not changed
  });
});

describe("request-id de-duplication", () => {
  test("a request id is a duplicate within the window and new again after it", () => {
    const seen = createSeenRequests({ windowMs: 1000 });
    expect(seen.seen(rid(1), T0)).toBe(false);
    expect(seen.seen(rid(1), T0 + 999)).toBe(true);
    expect(seen.seen(rid(2), T0 + 999)).toBe(false);
    expect(seen.seen(rid(1), T0 + 1000)).toBe(false);
  });

  test("expired ids are forgotten and the number held is capped", () => {
    const seen = createSeenRequests({ windowMs: 1000, maxEntries: 3 });
    for (let i = 0; i < 10; i++) seen.seen(rid(i), T0);
    expect(seen.size).toBe(3);
    expect(seen.seen(rid(9), T0)).toBe(true);
    expect(seen.seen(rid(0), T0)).toBe(false); // pushed out by the cap
    seen.seen(rid(100), T0 + 5000);
    expect(seen.size).toBe(1);
  });
});

describe("answers", () => {
  test("merging keeps one record per node, the highest seq, and the first ones up to the cap", () => {
    const merged = mergeAnswers([rec(1, 1), rec(2)], [rec(1, 5), rec(3), rec(4)], { cap: 3 });
    expect(merged.map(recordNodeId)).toEqual([rec(1), rec(2), rec(3)].map(recordNodeId));
    expect(merged[0]!.seq).toBe(5n);
  });

  test("recordsOfKind drops records that do not serve the kind", () => {
    const list = [rec(1, 1, ["app:chat"]), rec(2, 1, ["blockchain:bitcoin"])];
    expect(recordsOfKind(list, "app:chat").map(recordNodeId)).toEqual([recordNodeId(list[0]!)]);
  });
});
