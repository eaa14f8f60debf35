// Key check of a shared node record: Seal(random A) → Seal(A + own address) (seed 001 §公钥广播与验证, DESIGN §3).
//
// 1. The checker sends its public key in clear and Seal(A) to the key the record names.
// 2. The named node opens the box (only the owner of that X25519 key can) and answers
//    Seal(A ‖ its address).
// 3. The checker opens the answer and compares A and the address it dialled. A matching answer
//    proves the key's owner is at that address now. That the owner also wrote the record's fields is
//    proven by the record's own signature, made with the same X25519 key (record.ts).
// Answers use another seal purpose than challenges, so an answer box cannot be reflected as a
// challenge. Every function on network input returns a typed failure and never throws.
import { create, toBinary } from "@bufbuild/protobuf";
import { randomBytes } from "@noble/hashes/utils.js";
import { SEAL_PURPOSE, X25519_KEY_BYTES } from "../constants.ts";
import { LimitError } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { open, seal } from "../identity/index.ts";
import { decodeMessage } from "../wire/index.ts";
import { KeyAnswerBodySchema, KeyAnswerSchema, KeyChallengeSchema } from "../wire/index.ts";
import { isSameBytes } from "./record.ts";

/** Random value A: 32 bytes, so guessing it is hopeless. */
const CHALLENGE_NONCE_BYTES = 32;
/** Longest address string in a key answer ("[v6]:port/port" is < 60 chars). */
export const MAX_CHALLENGE_ADDRESS_CHARS = 128;
/** Largest KeyChallenge / KeyAnswer message accepted, in bytes (a key, a nonce, a box). */
export const MAX_CHALLENGE_BYTES = 1024;

/** What the checker keeps until the answer arrives. Holds the checker's private key: memory only. */
export interface ChallengeExpect {
  readonly myPrivateKey: Uint8Array;
  readonly theirPublicKey: Uint8Array;
  readonly nonce: Uint8Array;
}

export interface ChallengeOptions {
  /** Source of A. @default crypto random bytes */
  random?: (n: number) => Uint8Array;
}

export type AnswerFailure = "too-large" | "undecodable" | "bad-key" | "cannot-open" | "bad-nonce" | "bad-address";
export type CheckFailure = "too-large" | "undecodable" | "cannot-open" | "wrong-nonce" | "wrong-address";

/** Step 1. Throws SealError when `theirPub` is not a usable X25519 key (wrong length, low-order
 *  point): the caller treats that as a failed check of the record. */
export function makeChallenge(myKey: NodeKey, theirPub: Uint8Array, options: ChallengeOptions = {}): { payload: Uint8Array; expect: ChallengeExpect } {
  const nonce = (options.random ?? randomBytes)(CHALLENGE_NONCE_BYTES);
  const sealed = seal(myKey.privateKey, theirPub, SEAL_PURPOSE.keyChallenge, nonce);
  const payload = toBinary(KeyChallengeSchema, create(KeyChallengeSchema, { publicKey: myKey.publicKey, sealed }));
  return {
    payload,
    expect: { myPrivateKey: myKey.privateKey, theirPublicKey: theirPub, nonce },
  };
}

/** Step 2, on the challenged node. `myAddress` is this node's address as its record shows it
 *  (recordAddress(ownRecord)). */
export function answerChallenge(
  myKey: NodeKey,
  payload: Uint8Array,
  myAddress: string,
): { ok: true; answer: Uint8Array; challengerKey: Uint8Array } | { ok: false; reason: AnswerFailure; detail: string } {
  if (myAddress.length === 0 || myAddress.length > MAX_CHALLENGE_ADDRESS_CHARS) {
    return { ok: false, reason: "bad-address", detail: `own address must be 1..${MAX_CHALLENGE_ADDRESS_CHARS} characters` };
  }
  const decoded = decodeSafe(() => decodeMessage(KeyChallengeSchema, payload, "key challenge", MAX_CHALLENGE_BYTES));
  if (!decoded.ok) return decoded;
  const { publicKey, sealed } = decoded.value;
  if (publicKey.length !== X25519_KEY_BYTES) return { ok: false, reason: "bad-key", detail: `challenger key must be ${X25519_KEY_BYTES} bytes, got ${publicKey.length}` };
  let nonce: Uint8Array;
  try {
    nonce = open(myKey.privateKey, publicKey, SEAL_PURPOSE.keyChallenge, sealed);
  } catch (err) {
    return { ok: false, reason: "cannot-open", detail: err instanceof Error ? err.message : String(err) };
  }
  if (nonce.length !== CHALLENGE_NONCE_BYTES) return { ok: false, reason: "bad-nonce", detail: `A must be ${CHALLENGE_NONCE_BYTES} bytes, got ${nonce.length}` };
  try {
    const answer = toBinary(KeyAnswerSchema, create(KeyAnswerSchema, { sealed: sealAnswerBody(myKey, publicKey, SEAL_PURPOSE.keyAnswer, nonce, myAddress) }));
    return { ok: true, answer, challengerKey: publicKey };
  } catch (err) {
    // A low-order challenger key cannot be sealed to.
    return { ok: false, reason: "bad-key", detail: err instanceof Error ? err.message : String(err) };
  }
}

/** Step 3, on the checker. `expectedAddress` is the address the checker dialled, in the record's form
 *  (recordAddress(record)). */
export function checkAnswer(
  expect: ChallengeExpect,
  answer: Uint8Array,
  expectedAddress: string,
): { ok: true } | { ok: false; reason: CheckFailure; detail: string } {
  const decoded = decodeSafe(() => decodeMessage(KeyAnswerSchema, answer, "key answer", MAX_CHALLENGE_BYTES));
  if (!decoded.ok) return decoded;
  return openAnswerBody(expect.myPrivateKey, expect.theirPublicKey, SEAL_PURPOSE.keyAnswer, decoded.value.sealed, expect.nonce, expectedAddress);
}

/** Seal(KeyAnswerBody {nonce, address}) from `myKey` to `theirPub` under `purpose`: the box of a key
 *  answer, and of a helper's proof in a peers answer (helper-proof.ts; another purpose, so neither box
 *  can be passed off as the other). Throws SealError when `theirPub` cannot be sealed to. */
export function sealAnswerBody(myKey: NodeKey, theirPub: Uint8Array, purpose: string, nonce: Uint8Array, address: string): Uint8Array {
  const body = toBinary(KeyAnswerBodySchema, create(KeyAnswerBodySchema, { nonce, address }));
  return seal(myKey.privateKey, theirPub, purpose, body);
}

/** Opens a box made by sealAnswerBody and compares its nonce and address with what we expect. Never throws. */
export function openAnswerBody(
  myPrivateKey: Uint8Array,
  theirPub: Uint8Array,
  purpose: string,
  sealed: Uint8Array,
  nonce: Uint8Array,
  expectedAddress: string,
): { ok: true } | { ok: false; reason: CheckFailure; detail: string } {
  let plain: Uint8Array;
  try {
    plain = open(myPrivateKey, theirPub, purpose, sealed);
  } catch (err) {
    return { ok: false, reason: "cannot-open", detail: err instanceof Error ? err.message : String(err) };
  }
  const inner = decodeSafe(() => decodeMessage(KeyAnswerBodySchema, plain, "key answer body", MAX_CHALLENGE_BYTES));
  if (!inner.ok) return inner;
  const body = inner.value;
  if (!isSameBytes(body.nonce, nonce)) return { ok: false, reason: "wrong-nonce", detail: "the answer does not echo our random value" };
  if (body.address !== expectedAddress) {
    return { ok: false, reason: "wrong-address", detail: `the node says it is at ${JSON.stringify(body.address.slice(0, MAX_CHALLENGE_ADDRESS_CHARS))}, expected ${expectedAddress}` };
  }
  return { ok: true };
}

export function decodeSafe<T>(fn: () => T): { ok: true; value: T } | { ok: false; reason: "too-large" | "undecodable"; detail: string } {
  try {
    return { ok: true, value: fn() };
  } catch (err) {
    const detail = err instanceof Error ? err.message : String(err);
    return { ok: false, reason: err instanceof LimitError ? "too-large" : "undecodable", detail };
  }
}
