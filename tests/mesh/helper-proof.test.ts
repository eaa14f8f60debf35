// A helper's proof of its own record's key in a peers answer (src/mesh/helper-proof.ts): the asker
// opens it with its ephemeral key and the record's key and compares the nonce and the dialled address;
// the peers messages' new fields (mesh-messages.ts), the answer that carries a proof (peer-sharing.ts),
// and the merge of a proven record without a key check (record-merge.ts).
import { describe, expect, test } from "bun:test";
import { SEAL_PURPOSE } from "../../src/constants.ts";
import { DecodeError } from "../../src/errors.ts";
import { generateNodeKey, nodeKeyFromPrivate, seal } from "../../src/identity/index.ts";
import { createBanList } from "../../src/mesh/ban-list.ts";
import { createCandidatePool } from "../../src/mesh/candidate-pool.ts";
import { fillUp, targetKey, type AskTarget } from "../../src/mesh/help-targets.ts";
import { answerProof, checkProof, dialledAddressOf, makeProofAsk, MAX_PROOF_BYTES, PROOF_NONCE_BYTES } from "../../src/mesh/helper-proof.ts";
import { answerChallenge, makeChallenge } from "../../src/mesh/key-challenge.ts";
import { decodePeersAsk, decodePeersReply, encodePeersAnswer, encodePeersRequest } from "../../src/mesh/mesh-messages.ts";
import { createPeerSharing } from "../../src/mesh/peer-sharing.ts";
import type { RecordCheckResult } from "../../src/mesh/record-check.ts";
import { createRecordMerger } from "../../src/mesh/record-merge.ts";
import { buildRecord, formatNodeAddress, recordNodeId } from "../../src/mesh/record.ts";
import { PeersRequestSchema, Status } from "../../src/wire/index.ts";
import { EnvelopeSchema } from "../../src/wire/gen/findings_pb.ts";
import { askForHelp, type HelpTarget } from "../../src/mesh/online-help.ts";
import type { MeshNet } from "../../src/mesh/core-link.ts";
import { create, toBinary } from "@bufbuild/protobuf";
import { seeded } from "../seeded.ts";

const T0 = 1_800_000_000_000;
const helperKey = generateNodeKey();
const helperRecord = buildRecord(helperKey, { addresses: [{ ip: "192.0.2.7", udpPort: 7788, tcpPort: 7789 }], spki: "ab".repeat(32), seq: 1, now: T0 });
const ADDRESS = formatNodeAddress(helperRecord.addresses[0]!);

describe("the helper's proof", () => {
  test("the owner of the record's key at the dialled address passes", () => {
    const { ask, expect: want } = makeProofAsk();
    expect(ask.key).toHaveLength(32);
    expect(ask.nonce).toHaveLength(PROOF_NONCE_BYTES);
    const made = answerProof(helperKey, ask, ADDRESS);
    if (!made.ok) throw new Error(made.detail);
    expect(made.proof.length).toBeLessThanOrEqual(MAX_PROOF_BYTES);
    expect(checkProof(want, helperRecord.publicKey, made.proof, ADDRESS)).toEqual({ ok: true });
  });

  test("a proof made for another ask fails on the nonce", () => {
    const mine = makeProofAsk();
    const other = makeProofAsk();
    // The same ephemeral key, another value: only the nonce differs.
    const made = answerProof(helperKey, { key: mine.ask.key, nonce: other.ask.nonce }, ADDRESS);
    if (!made.ok) throw new Error(made.detail);
    expect(checkProof(mine.expect, helperRecord.publicKey, made.proof, ADDRESS)).toMatchObject({ ok: false, reason: "wrong-nonce" });
  });

  test("a proof naming another address fails: a relay that passes the ask on gets the owner's own address", () => {
    const { ask, expect: want } = makeProofAsk();
    const made = answerProof(helperKey, ask, "198.51.100.1:7788/7789");
    if (!made.ok) throw new Error(made.detail);
    expect(checkProof(want, helperRecord.publicKey, made.proof, ADDRESS)).toMatchObject({ ok: false, reason: "wrong-address" });
  });

  test("a box from another key does not open with the record's key", () => {
    const { ask, expect: want } = makeProofAsk();
    const made = answerProof(generateNodeKey(), ask, ADDRESS);
    if (!made.ok) throw new Error(made.detail);
    expect(checkProof(want, helperRecord.publicKey, made.proof, ADDRESS)).toMatchObject({ ok: false, reason: "cannot-open" });
  });

  test("a key answer box cannot be passed off as a proof (separate seal purposes)", () => {
    const { ask, expect: want } = makeProofAsk();
    const keyAnswer = seal(helperKey.privateKey, ask.key, SEAL_PURPOSE.keyAnswer, new Uint8Array(40));
    expect(checkProof(want, helperRecord.publicKey, keyAnswer, ADDRESS)).toMatchObject({ ok: false, reason: "cannot-open" });
    // And a key challenge with the ephemeral key does not yield a proof either.
    const challenge = makeChallenge(nodeKeyFromPrivate(want.ephemeral.privateKey), helperKey.publicKey);
    const answered = answerChallenge(helperKey, challenge.payload, ADDRESS);
    if (!answered.ok) throw new Error(answered.detail);
    expect(checkProof(want, helperRecord.publicKey, answered.answer, ADDRESS).ok).toBe(false);
  });

  test("garbage and oversized proofs fail without throwing", () => {
    const { expect: want } = makeProofAsk();
    const rand = seeded(3);
    for (let i = 0; i < 200; i++) {
      const junk = Uint8Array.from({ length: Math.floor(rand() * 300) }, () => Math.floor(rand() * 256));
      expect(checkProof(want, helperRecord.publicKey, junk, ADDRESS).ok).toBe(false);
    }
    expect(checkProof(want, helperRecord.publicKey, new Uint8Array(MAX_PROOF_BYTES + 1), ADDRESS)).toMatchObject({ ok: false, reason: "too-large" });
    expect(checkProof(want, new Uint8Array(5), new Uint8Array(60), ADDRESS)).toMatchObject({ ok: false, reason: "bad-key" });
  });

  test("the helper refuses a low-order key and an empty address without throwing", () => {
    const { ask } = makeProofAsk();
    expect(answerProof(helperKey, { key: new Uint8Array(32), nonce: ask.nonce }, ADDRESS)).toMatchObject({ ok: false, reason: "bad-key" });
    expect(answerProof(helperKey, ask, "")).toMatchObject({ ok: false, reason: "bad-address" });
  });

  test("the dialled address is looked up among the record's TCP addresses", () => {
    expect(dialledAddressOf(helperRecord, { ip: "192.0.2.7", port: 7789 })).toEqual(helperRecord.addresses[0]!);
    expect(dialledAddressOf(helperRecord, { ip: "::ffff:192.0.2.7", port: 7789 })).toEqual(helperRecord.addresses[0]!);
    expect(dialledAddressOf(helperRecord, { ip: "192.0.2.7", port: 7788 })).toBeNull(); // the UDP port
    expect(dialledAddressOf(helperRecord, { ip: "192.0.2.8", port: 7789 })).toBeNull();
  });
});

describe("peers messages with a proof", () => {
  test("a request carries the proof ask; both fields or neither, each of its length", () => {
    const { ask } = makeProofAsk();
    expect(decodePeersAsk(encodePeersRequest(20, ask))).toEqual({ max: 20, proof: { key: ask.key, nonce: ask.nonce } });
    expect(decodePeersAsk(encodePeersRequest(20))).toEqual({ max: 20, proof: null });
    const bad = (proofKey: Uint8Array, proofNonce: Uint8Array) => toBinary(PeersRequestSchema, create(PeersRequestSchema, { max: 1, proofKey, proofNonce }));
    expect(() => decodePeersAsk(bad(ask.key, new Uint8Array(0)))).toThrow(/proof_nonce must be 32 bytes/);
    expect(() => decodePeersAsk(bad(new Uint8Array(0), ask.nonce))).toThrow(/proof_key must be 32 bytes/);
    expect(() => decodePeersAsk(bad(new Uint8Array(33), ask.nonce))).toThrow(DecodeError);
    expect(() => decodePeersAsk(new Uint8Array(300))).toThrow(/peers request/);
  });

  test("an answer carries the proof and the IP the helper saw; an observed IP that is not an IP does not decode", () => {
    const proof = new Uint8Array([1, 2, 3]);
    expect(decodePeersReply(encodePeersAnswer([helperRecord], proof, "203.0.113.4"))).toMatchObject({ records: [helperRecord], proof, observedIp: "203.0.113.4" });
    expect(decodePeersReply(encodePeersAnswer([helperRecord]))).toMatchObject({ proof: new Uint8Array(0), observedIp: null });
    expect(() => decodePeersReply(encodePeersAnswer([], undefined, "not an ip"))).toThrow(/observed_ip/);
  });

  test("a serving helper answers a proof ask with its record first and a proof for the address the connection reached", () => {
    const sharing = createPeerSharing({ candidates: createCandidatePool({ selfId: helperKey.nodeId }), ownRecord: () => helperRecord, nodeKey: helperKey, shareCount: 10, rand: seeded(1) });
    const { ask, expect: want } = makeProofAsk();
    const reply = sharing.answer(encodePeersRequest(10, ask), { via: "link", rateKey: "ip:a", banned: false, reached: { localIp: "192.0.2.7", remoteIp: "203.0.113.4" } }, T0);
    expect(reply.status).toBe(Status.OK);
    const got = decodePeersReply(reply.payload!);
    expect(recordNodeId(got.records[0]!)).toBe(helperKey.nodeId);
    expect(got.observedIp).toBe("203.0.113.4");
    expect(checkProof(want, got.records[0]!.publicKey, got.proof, ADDRESS)).toEqual({ ok: true });
    // Without an ask, no proof and no IP; a low-order key is a clear BAD_REQUEST.
    expect(decodePeersReply(sharing.answer(encodePeersRequest(10), { via: "link", rateKey: "ip:b", banned: false }, T0).payload!)).toMatchObject({ observedIp: null, proof: new Uint8Array(0) });
    const low = sharing.answer(encodePeersRequest(10, { key: new Uint8Array(32), nonce: ask.nonce }), { via: "link", rateKey: "ip:c", banned: false }, T0);
    expect(low).toMatchObject({ status: Status.BAD_REQUEST, error: expect.stringContaining("proof: bad-key") });
  });

  test("a helper that does not serve sends no proof", () => {
    const sharing = createPeerSharing({ candidates: createCandidatePool({ selfId: helperKey.nodeId }), ownRecord: () => undefined, nodeKey: helperKey, shareCount: 10, rand: seeded(1) });
    const reply = sharing.answer(encodePeersRequest(10, makeProofAsk().ask), { via: "link", rateKey: "ip:a", banned: false }, T0);
    expect(decodePeersReply(reply.payload!).proof).toHaveLength(0);
  });
});

describe("merging a proven helper record", () => {
  function setup() {
    const pool = createCandidatePool({ selfId: "f".repeat(64) });
    const checked: string[] = [];
    const merger = createRecordMerger({
      pool,
      bans: createBanList(),
      now: () => T0,
      async check(rec) {
        checked.push(recordNodeId(rec));
        return { ok: true, rttMs: 50, proven: rec.addresses };
      },
      punish: () => {},
      improvingOnly: () => true, // the budget does not hold a proven record back
    });
    return { pool, checked, merger };
  }
  const sharer = { label: "192.0.2.7:7789", ip: "192.0.2.7" };

  test("a proof that holds adds the record at the dialled address without a key check", async () => {
    const { pool, checked, merger } = setup();
    const result: RecordCheckResult = { ok: true, rttMs: 12, proven: [helperRecord.addresses[0]!] };
    await merger.merge([helperRecord], sharer, { record: helperRecord, result });
    expect(checked).toEqual([]);
    expect(pool.get(helperKey.nodeId)).toMatchObject({ rttMs: 12, proven: [helperRecord.addresses[0]!] });
    expect(merger.counters).toMatchObject({ checksByProof: 1, checksOk: 1 });
  });

  test("a proof that does not hold counts as a failed key check of that record: not merged, nor checked again", async () => {
    const { pool, checked, merger } = setup();
    const result: RecordCheckResult = { ok: false, kind: "key-mismatch", detail: "helper proof: cannot-open" };
    await merger.merge([helperRecord], sharer, { record: helperRecord, result });
    expect(pool.has(helperKey.nodeId)).toBe(false);
    expect(merger.counters.checksKeyFailed).toBe(1);
    await merger.merge([helperRecord], { label: "other", ip: "198.51.100.3" });
    expect(checked).toEqual([]); // that version failed: not re-checked for a while
  });

  test("the other records of the answer are key-checked as before", async () => {
    const { pool, checked, merger } = setup();
    const other = buildRecord(generateNodeKey(), { addresses: [{ ip: "198.51.100.5", udpPort: 7788, tcpPort: 7788 }], spki: "ab".repeat(32), seq: 1, now: T0 });
    await merger.merge([helperRecord, other], sharer, { record: helperRecord, result: { ok: true, rttMs: 12, proven: [helperRecord.addresses[0]!] } });
    expect(checked).toEqual([recordNodeId(other)]);
    expect(pool.size).toBe(2);
  });
});

describe("asking a helper for help with a proof", () => {
  /** A helper at 192.0.2.7:7789 answering through `answer` (a real peer sharing unless a test lies). */
  function helper(own: typeof helperRecord | undefined, answer?: (payload: Uint8Array) => Uint8Array) {
    const sharing = createPeerSharing({ candidates: createCandidatePool({ selfId: helperKey.nodeId }), ownRecord: () => own, nodeKey: helperKey, shareCount: 10, rand: seeded(1) });
    const asked: Uint8Array[] = [];
    const links = {
      dialUntrusted: async () => ({
        request: async (_method: string, payload: Uint8Array) => {
          asked.push(payload);
          const reply = answer ? { status: Status.OK, payload: answer(payload) } : sharing.answer(payload, { via: "link", rateKey: "ip:x", banned: false, reached: { localIp: "192.0.2.7", remoteIp: "203.0.113.4" } }, T0);
          return create(EnvelopeSchema, { status: reply.status, payload: reply.payload, error: reply.error ?? "" });
        },
        close: () => {},
      }),
    } as unknown as Pick<MeshNet, "dialUntrusted">;
    return { links, asked };
  }
  const target = { addr: { ip: "192.0.2.7", port: 7789 } };
  const ask = (links: Pick<MeshNet, "dialUntrusted">, t: HelpTarget = target) => askForHelp(links, [t], { now: T0, clock: () => 0 }).then((r) => r.answers[0]!);

  test("a serving helper's proof proves its record at the dialled address; the IP it saw comes along", async () => {
    const a = await ask(helper(helperRecord).links);
    expect(a.proof).toMatchObject({ record: { publicKey: helperKey.publicKey }, result: { ok: true, proven: [helperRecord.addresses[0]!] } });
    expect(a.observedIp).toBe("203.0.113.4");
  });

  test("a proof that does not open is a failed key check of the helper's record, not a lie", async () => {
    const { links } = helper(helperRecord, () => encodePeersAnswer([helperRecord], new Uint8Array(80)));
    const a = await ask(links);
    expect(a.lie).toBeNull();
    expect(a.proof).toMatchObject({ result: { ok: false, kind: "key-mismatch" } });
  });

  test("no proof, a first record that does not name the dialled address, or one with two addresses: key-checked as before", async () => {
    expect((await ask(helper(undefined).links)).proof).toBeNull(); // does not serve: no proof
    expect((await ask(helper(helperRecord).links, { addr: { ip: "192.0.2.8", port: 7789 } })).proof).toBeNull();
    const dual = buildRecord(helperKey, { addresses: [helperRecord.addresses[0]!, { ip: "2001:db8::7", udpPort: 7788, tcpPort: 7789 }], spki: "ab".repeat(32), seq: 2, now: T0 });
    expect((await ask(helper(dual).links)).proof).toBeNull();
  });

  test("a helper that is already a candidate is asked for no proof", async () => {
    const { links, asked } = helper(helperRecord);
    expect((await ask(links, { ...target, known: true })).proof).toBeNull();
    expect(decodePeersAsk(asked[0]!).proof).toBeNull();
  });
});

describe("help targets", () => {
  const target = (ip: string): AskTarget => ({ help: { addr: { ip, port: 7788 } }, udp: { ip, port: 7788 } });
  const peers = [target("192.0.2.1"), target("192.0.2.2"), target("192.0.2.3")];

  test("known candidates go first; the configured peers only fill up, each endpoint once", () => {
    const known = [target("198.51.100.1"), target("198.51.100.2")];
    const out = fillUp(known, peers, 4, seeded(2)).map((t) => targetKey(t.help));
    expect(out.slice(0, 2)).toEqual(["198.51.100.1/7788", "198.51.100.2/7788"]);
    expect(out).toHaveLength(4);
    expect(peers.map((p) => targetKey(p.help))).toContain(out[3]!);
    // Enough candidates: no configured peer is asked.
    const many = Array.from({ length: 5 }, (_, i) => target(`198.51.100.${10 + i}`));
    expect(fillUp(many, peers, 3, seeded(2)).every((t) => t.help.addr.ip.startsWith("198.51.100."))).toBe(true);
    // A candidate that is a configured peer counts once.
    expect(fillUp([target("192.0.2.1")], peers, 10, seeded(2))).toHaveLength(3);
  });
});
