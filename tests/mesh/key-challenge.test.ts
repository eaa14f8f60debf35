// Key check of shared records: Seal(A) → Seal(A + address) (seed 001 §公钥广播与验证).
import { describe, expect, test } from "bun:test";
import { clone, create, fromBinary, toBinary } from "@bufbuild/protobuf";
import { SealError } from "../../src/errors.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { NodeRecordSchema, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { KeyAnswerSchema, KeyChallengeSchema } from "../../src/wire/gen/mesh_pb.ts";
import { answerChallenge, checkAnswer, makeChallenge, MAX_CHALLENGE_BYTES } from "../../src/mesh/key-challenge.ts";
import { buildRecord, recordAddress, signRecord, verifyRecord } from "../../src/mesh/record.ts";

const NOW = 1_700_000_000_000;

function recordOf(key: NodeKey, ip = "203.0.113.1"): NodeRecord {
  return buildRecord(key, { addresses: [{ ip, udpPort: 7788, tcpPort: 7788 }], spki: new Uint8Array(32), stakes: { "*": "0xowner" }, seq: 1, now: NOW });
}

/** The checker challenges `rec`; `responder` (whoever sits at the dialled address) answers. */
function runCheck(checker: NodeKey, rec: NodeRecord, responder: NodeKey, responderAddress: string) {
  const { payload, expect: exp } = makeChallenge(checker, rec.publicKey);
  const answered = answerChallenge(responder, payload, responderAddress);
  if (!answered.ok) return answered;
  return checkAnswer(exp, answered.answer, recordAddress(rec));
}

describe("key challenge", () => {
  const checker = generateNodeKey();
  const owner = generateNodeKey();
  const rec = recordOf(owner);

  test("the owner of the record's key at the record's address passes", () => {
    const res = runCheck(checker, rec, owner, recordAddress(rec));
    expect(res).toEqual({ ok: true });
  });

  test("the random value A comes from the injected source", () => {
    const fixed = new Uint8Array(32).fill(9);
    const { expect: exp } = makeChallenge(checker, owner.publicKey, { random: () => fixed });
    expect(exp.nonce).toEqual(fixed);
  });

  test("a record whose public key was replaced fails: the real node cannot open the challenge", () => {
    const attacker = generateNodeKey();
    const forged = signRecord(Object.assign(clone(NodeRecordSchema, rec), { publicKey: attacker.publicKey }), attacker.privateKey);
    // The dialled address is the victim's; the victim answers.
    expect(runCheck(checker, forged, owner, recordAddress(rec))).toMatchObject({ ok: false, reason: "cannot-open" });
  });

  test("a record whose public key was replaced fails when the attacker answers from its own address", () => {
    const attacker = generateNodeKey();
    const forged = signRecord(Object.assign(clone(NodeRecordSchema, rec), { publicKey: attacker.publicKey }), attacker.privateKey);
    expect(runCheck(checker, forged, attacker, "198.51.100.66:7788/7788")).toMatchObject({ ok: false, reason: "wrong-address" });
  });

  test("a record re-signed by a relay with its own stakes does not even verify: no key check needed", () => {
    const relay = generateNodeKey();
    const hijacked = signRecord(Object.assign(clone(NodeRecordSchema, rec), { stakes: [] }), relay.privateKey);
    expect(hijacked.publicKey).toEqual(owner.publicKey);
    expect(verifyRecord(hijacked, NOW)).toMatchObject({ ok: false, reason: "bad-signature" });
  });

  test("an answer naming another address fails", () => {
    expect(runCheck(checker, rec, owner, "203.0.113.99:7788/7788")).toMatchObject({ ok: false, reason: "wrong-address" });
  });

  test("an answer to another challenge fails on the nonce", () => {
    const first = makeChallenge(checker, owner.publicKey);
    const second = makeChallenge(checker, owner.publicKey);
    const answered = answerChallenge(owner, first.payload, recordAddress(rec));
    expect(answered.ok).toBe(true);
    if (answered.ok) expect(checkAnswer(second.expect, answered.answer, recordAddress(rec))).toMatchObject({ ok: false, reason: "wrong-nonce" });
  });

  test("a challenge box reflected back as an answer does not open (separate seal purposes)", () => {
    const { payload, expect: exp } = makeChallenge(checker, owner.publicKey);
    const challenge = fromBinary(KeyChallengeSchema, payload);
    const reflected = toBinary(KeyAnswerSchema, create(KeyAnswerSchema, { sealed: challenge.sealed }));
    expect(checkAnswer(exp, reflected, recordAddress(rec))).toMatchObject({ ok: false, reason: "cannot-open" });
  });

  test("makeChallenge refuses a key that is not a usable X25519 key with a SealError", () => {
    expect(() => makeChallenge(checker, new Uint8Array(31))).toThrow(SealError);
    expect(() => makeChallenge(checker, new Uint8Array(32))).toThrow(SealError);
  });
});

describe("key challenge on garbage", () => {
  const me = generateNodeKey();
  const { expect: exp } = makeChallenge(generateNodeKey(), me.publicKey);

  test("random bytes never throw out of answerChallenge or checkAnswer", () => {
    let seed = 7;
    const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) >>> 16) & 0xff;
    for (let i = 0; i < 300; i++) {
      const bytes = Uint8Array.from({ length: i % 120 }, rnd);
      expect(answerChallenge(me, bytes, "203.0.113.1:1/1").ok).toBe(false);
      expect(checkAnswer(exp, bytes, "203.0.113.1:1/1").ok).toBe(false);
    }
  });

  test(`payloads over ${MAX_CHALLENGE_BYTES} bytes are refused as too-large`, () => {
    const big = new Uint8Array(MAX_CHALLENGE_BYTES + 1);
    expect(answerChallenge(me, big, "203.0.113.1:1/1")).toMatchObject({ ok: false, reason: "too-large" });
    expect(checkAnswer(exp, big, "203.0.113.1:1/1")).toMatchObject({ ok: false, reason: "too-large" });
  });

  test("a challenger key of the wrong length is refused as bad-key", () => {
    const payload = toBinary(KeyChallengeSchema, create(KeyChallengeSchema, { publicKey: new Uint8Array(16), sealed: new Uint8Array(60) }));
    expect(answerChallenge(me, payload, "203.0.113.1:1/1")).toMatchObject({ ok: false, reason: "bad-key" });
  });

  test("a low-order challenger key is refused without throwing", () => {
    const payload = toBinary(KeyChallengeSchema, create(KeyChallengeSchema, { publicKey: new Uint8Array(32), sealed: new Uint8Array(60) }));
    expect(answerChallenge(me, payload, "203.0.113.1:1/1").ok).toBe(false);
  });

  test("an empty own address is refused", () => {
    const { payload } = makeChallenge(generateNodeKey(), me.publicKey);
    expect(answerChallenge(me, payload, "")).toMatchObject({ ok: false, reason: "bad-address" });
  });
});
