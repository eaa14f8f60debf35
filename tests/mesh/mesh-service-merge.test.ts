// Merging shared records (src/mesh/record-merge.ts; seed 001 §公钥广播与验证): verify, check once per record, blame a failed key check on the named record only, punish relays only for what they could check, and the mesh messages' decoders on hostile bytes.
import { describe, expect, test } from "bun:test";
import { clone } from "@bufbuild/protobuf";
import { DecodeError, LimitError } from "../../src/errors.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { createBanList } from "../../src/mesh/ban-list.ts";
import { createCandidatePool } from "../../src/mesh/candidate-pool.ts";
import { decodeFindAnswer, decodePeersAnswer, decodePeersRequest, decodeSelfCheckRequest, encodeSelfCheckRequest } from "../../src/mesh/mesh-messages.ts";
import { MAX_RECORD_LIST_BYTES } from "../../src/mesh/mesh-service-constants.ts";
import type { RecordCheckResult } from "../../src/mesh/record-check.ts";
import { createRecordMerger, type Sharer } from "../../src/mesh/record-merge.ts";
import { buildRecord, recordNodeId, signRecord } from "../../src/mesh/record.ts";
import { NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { until } from "../wait.ts";

const T0 = 1_800_000_000_000;
const SPKI = "ab".repeat(32);

function recordOf(key: NodeKey, ip: string): NodeRecord {
  return buildRecord(key, { addresses: [{ ip, udpPort: 7788, tcpPort: 7788 }], spki: SPKI, seq: 1, now: T0 });
}

/** The liar's trick: someone's record with a fresh key, re-signed so the signature still verifies. */
function forge(rec: NodeRecord): NodeRecord {
  const fake = generateNodeKey();
  const out = clone(NodeRecordSchema, rec);
  out.publicKey = fake.publicKey;
  return signRecord(out, fake.privateKey);
}

function setup(checks: (rec: NodeRecord) => RecordCheckResult | Promise<RecordCheckResult>, now: () => number = () => T0, improvingOnly?: () => boolean) {
  const pool = createCandidatePool({ selfId: "f".repeat(64) });
  const bans = createBanList();
  const punished: { sharer: Sharer; why: string }[] = [];
  const checked: string[] = [];
  const merger = createRecordMerger({
    pool,
    bans,
    now,
    async check(rec) {
      checked.push(recordNodeId(rec));
      return checks(rec);
    },
    punish(sharer, why) {
      punished.push({ sharer, why });
      if (sharer.id) bans.ban(sharer.id, { reason: why, now: T0 });
      if (sharer.ip) bans.ban(sharer.ip, { reason: why, now: T0 });
    },
    improvingOnly,
  });
  return { pool, bans, punished, checked, merger };
}

const honest = (rec: NodeRecord): RecordCheckResult => ({ ok: true, rttMs: 1, proven: rec.addresses });

describe("merging shared records", () => {
  test("a record that passes its check is added with the check's round trip", async () => {
    const { pool, merger } = setup(honest);
    const r = recordOf(generateNodeKey(), "192.0.2.1");
    await merger.merge([r], { label: "peer", id: "a".repeat(64) });
    expect(pool.get(recordNodeId(r))!.rttMs).toBe(1);
    expect(merger.counters.checksOk).toBe(1);
  });

  test("a failed key check punishes no sharer: the record is not merged nor re-checked, the sharers' other records are", async () => {
    const genuine = recordOf(generateNodeKey(), "192.0.2.1");
    const forged = forge(genuine);
    const relaysOwn = recordOf(generateNodeKey(), "192.0.2.9");
    const { pool, punished, checked, merger } = setup((rec) => (recordNodeId(rec) === recordNodeId(forged) ? { ok: false, kind: "key-mismatch", detail: "cannot open" } : { ok: true, rttMs: 2, proven: rec.addresses }));
    const relay: Sharer = { label: "relay", id: "b".repeat(64), ip: "192.0.2.9" };
    const other: Sharer = { label: "other", id: "c".repeat(64), ip: "192.0.2.10" };
    await Promise.all([merger.merge([relaysOwn, forged], relay), merger.merge([forged], other)]);
    expect(checked.filter((id) => id === recordNodeId(forged))).toHaveLength(1); // one check for both sharers
    expect(punished).toEqual([]);
    expect(merger.counters.checksKeyFailed).toBe(1);
    expect(pool.has(recordNodeId(forged))).toBe(false);
    expect(pool.has(recordNodeId(relaysOwn))).toBe(true);
    // Re-shared later, the failed version is not checked again.
    await merger.merge([forged], { label: "someone", id: "d".repeat(64) });
    expect(checked.filter((id) => id === recordNodeId(forged))).toHaveLength(1);
  });

  test("a sharer whose introductions keep failing their key check gets its new records left unchecked for a while, unbanned", async () => {
    let t = T0;
    const failing = new Set<string>();
    const { pool, punished, checked, merger } = setup((rec) => (failing.has(recordNodeId(rec)) ? { ok: false, kind: "key-mismatch", detail: "cannot open" } : { ok: true, rttMs: 1, proven: rec.addresses }), () => t);
    const relay: Sharer = { label: "relay", id: "b".repeat(64), ip: "192.0.2.9" };
    for (let i = 0; i < 3; i++) {
      const bad = recordOf(generateNodeKey(), `192.0.2.${20 + i}`);
      failing.add(recordNodeId(bad));
      await merger.merge([bad], relay);
    }
    const next = recordOf(generateNodeKey(), "192.0.2.30");
    await merger.merge([next], relay);
    expect(checked).not.toContain(recordNodeId(next));
    expect(merger.counters.checksThrottled).toBe(1);
    expect(punished).toEqual([]);
    // Others still introduce records; the relay's turn comes back after the window.
    const fromOther = recordOf(generateNodeKey(), "192.0.2.31");
    await merger.merge([fromOther], { label: "other", id: "c".repeat(64) });
    expect(pool.has(recordNodeId(fromOther))).toBe(true);
    t += 10 * 60_000;
    await merger.merge([next], relay);
    expect(pool.has(recordNodeId(next))).toBe(true);
  });

  test("while new records can only improve the pool, at most a burst of 10 and then 6 a minute are checked; updates of held ones always", async () => {
    let t = T0;
    let improving = false;
    const { pool, checked, merger } = setup(honest, () => t, () => improving);
    const sharer: Sharer = { label: "peer", id: "a".repeat(64), ip: "192.0.2.9" };
    const held = generateNodeKey();
    await merger.merge([recordOf(held, "192.0.2.200")], sharer);
    improving = true;
    const fresh = Array.from({ length: 20 }, (_, i) => recordOf(generateNodeKey(), `198.51.${100 + i}.1`));
    await merger.merge(fresh.slice(0, 10), sharer);
    await merger.merge(fresh.slice(10, 15), sharer);
    expect(checked).toHaveLength(1 + 10);
    expect(merger.counters.checksDeferred).toBe(5);
    // A new version of a held candidate at another address is checked whatever the budget.
    const moved = buildRecord(held, { addresses: [{ ip: "192.0.2.201", udpPort: 7788, tcpPort: 7788 }], spki: SPKI, seq: 2, now: T0 });
    await merger.merge([moved], sharer);
    expect(checked).toHaveLength(12);
    t += 60_000;
    await merger.merge(fresh.slice(10, 20), sharer);
    expect(checked).toHaveLength(12 + 6);
    expect(pool.size).toBe(1 + 10 + 6);
  });

  test("expired, early and old-format records are left out without punishing their sharer", async () => {
    const { pool, punished, merger } = setup(honest);
    const expired = buildRecord(generateNodeKey(), { addresses: [{ ip: "192.0.2.3", udpPort: 7788, tcpPort: 7788 }], spki: SPKI, seq: 1, now: T0 - 2 * 86_400_000 });
    const early = buildRecord(generateNodeKey(), { addresses: [{ ip: "192.0.2.4", udpPort: 7788, tcpPort: 7788 }], spki: SPKI, seq: 1, now: T0 + 3_600_000 });
    const oldFormat = clone(NodeRecordSchema, recordOf(generateNodeKey(), "192.0.2.5"));
    oldFormat.version = 1;
    const good = recordOf(generateNodeKey(), "192.0.2.6");
    await merger.merge([expired, early, oldFormat, good], { label: "relay", id: "a".repeat(64) });
    expect(punished).toEqual([]);
    expect(pool.list().map((c) => c.id)).toEqual([recordNodeId(good)]);
  });

  test("an unreachable node is not added, not punished, and not re-checked at once", async () => {
    const { pool, punished, checked, merger } = setup(() => ({ ok: false, kind: "unreachable", detail: "refused" }));
    const r = recordOf(generateNodeKey(), "192.0.2.1");
    await merger.merge([r], { label: "p", id: "a".repeat(64) });
    await merger.merge([r], { label: "q", id: "e".repeat(64) });
    expect(pool.size).toBe(0);
    expect(punished).toEqual([]);
    expect(checked).toHaveLength(1);
  });

  test("a record with a broken signature punishes its sharer and nothing of the batch is merged", async () => {
    const { pool, punished, merger } = setup(honest);
    const good = recordOf(generateNodeKey(), "192.0.2.1");
    const broken = clone(NodeRecordSchema, recordOf(generateNodeKey(), "192.0.2.2"));
    broken.kinds = ["app:tampered"];
    await merger.merge([good, broken], { label: "relay", id: "a".repeat(64) });
    expect(punished).toHaveLength(1);
    expect(punished[0]!.why).toContain("bad-signature");
    expect(pool.size).toBe(0);
  });

  test("records from a banned sharer are ignored; records from our own cache need no sharer", async () => {
    const { pool, bans, merger } = setup(honest);
    bans.ban("a".repeat(64), { reason: "earlier lie", now: T0 });
    const r = recordOf(generateNodeKey(), "192.0.2.1");
    await merger.merge([r], { label: "banned", id: "a".repeat(64) });
    expect(pool.size).toBe(0);
    await merger.merge([r], null);
    expect(pool.size).toBe(1);
  });
});

describe("mesh message decoders", () => {
  const decoders: [string, (b: Uint8Array) => unknown][] = [
    ["peers request", decodePeersRequest],
    ["peers answer", decodePeersAnswer],
    ["find answer", decodeFindAnswer],
    ["self-check request", decodeSelfCheckRequest],
  ];

  test("random bytes give typed errors or a message, never a crash", () => {
    let state = 7;
    const rnd = () => (state = (state * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    for (const [, decode] of decoders) {
      for (let i = 0; i < 300; i++) {
        const bytes = Uint8Array.from({ length: 1 + (i % 97) }, rnd);
        try {
          decode(bytes);
        } catch (err) {
          expect(err instanceof DecodeError || err instanceof LimitError).toBe(true);
        }
      }
    }
  });

  test("a record list one byte over the limit is refused before parsing", () => {
    expect(() => decodePeersAnswer(new Uint8Array(MAX_RECORD_LIST_BYTES + 1))).toThrow(LimitError);
    expect(() => decodeFindAnswer(new Uint8Array(MAX_RECORD_LIST_BYTES + 1))).toThrow(LimitError);
  });

  test("a self-check request needs a 16-byte nonce and both ports", () => {
    expect(decodeSelfCheckRequest(encodeSelfCheckRequest({ tcpPort: 1, udpPort: 2, nonce: new Uint8Array(16) })).udpPort).toBe(2);
    expect(() => decodeSelfCheckRequest(encodeSelfCheckRequest({ tcpPort: 1, udpPort: 2, nonce: new Uint8Array(15) }))).toThrow(DecodeError);
    expect(() => decodeSelfCheckRequest(encodeSelfCheckRequest({ tcpPort: 0, udpPort: 2, nonce: new Uint8Array(16) }))).toThrow(DecodeError);
  });
});
