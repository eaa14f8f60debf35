// A helper's proof of its own record's key, folded into online help (DESIGN §3 first contact, key check
// of seed 001 §公钥广播与验证): the key check of the helper's record without a second request.
//
// 1. The asker sends, beside `max`, a fresh ephemeral X25519 public key and a random value, in clear.
// 2. A helper that serves answers, beside its records (its own first), Seal(its key → the ephemeral key,
//    purpose helperProof, nonce ‖ the address of its own record the connection reached).
// 3. The asker opens the box with the ephemeral private key and the key of the helper's own record and
//    compares the nonce and the address it dialled. Only the owner of that key can make a box that opens
//    so, and the box names where the connection reached it: a match proves what a key check proves (the
//    key's owner is at the dialled address now). A relay that passes the ask on to the real owner gets a
//    box naming the owner's own address, not the dialled one. A fresh key and value per ask: a box is
//    good for one answer only, and another seal purpose than key answers (key-challenge.ts), so no box
//    can be reflected between the two.
// Every function on network input returns a typed failure and never throws.
import { ephemeralKeyPair, type NodeKey } from "../identity/index.ts";
import { SEAL_PURPOSE, X25519_KEY_BYTES } from "../constants.ts";
import { randomBytes } from "@noble/hashes/utils.js";
import { openAnswerBody, sealAnswerBody, MAX_CHALLENGE_ADDRESS_CHARS, type CheckFailure } from "./key-challenge.ts";
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import { normalizeIp } from "./candidate-addresses.ts";
import { checkableAddresses } from "./record.ts";

/** The random value: 32 bytes, like a key check's A. */
export const PROOF_NONCE_BYTES = 32;
/** Largest proof box accepted, in bytes: nonce, tag and a body of a 32-byte value and an address of at
 *  most MAX_CHALLENGE_ADDRESS_CHARS come to < 220. */
export const MAX_PROOF_BYTES = 256;

/** What the asker sends (PeersRequest proof_key, proof_nonce). */
export interface ProofAsk {
  key: Uint8Array;
  nonce: Uint8Array;
}

/** What the asker keeps until the answer: the ephemeral private key, memory only. */
export interface ProofExpect {
  readonly ephemeral: { readonly privateKey: Uint8Array; readonly publicKey: Uint8Array };
  readonly nonce: Uint8Array;
}

export type ProofFailure = CheckFailure | "bad-key";

/** Step 1. */
export function makeProofAsk(options: { random?: (n: number) => Uint8Array } = {}): { ask: ProofAsk; expect: ProofExpect } {
  const ephemeral = ephemeralKeyPair();
  const nonce = (options.random ?? randomBytes)(PROOF_NONCE_BYTES);
  return { ask: { key: ephemeral.publicKey, nonce }, expect: { ephemeral, nonce } };
}

/** Step 2, on the helper. `myAddress`: the address of its own record the connection reached
 *  (addressReachedAt). `ask` comes from a decoder that checked both lengths. */
export function answerProof(myKey: NodeKey, ask: ProofAsk, myAddress: string): { ok: true; proof: Uint8Array } | { ok: false; reason: "bad-key" | "bad-address"; detail: string } {
  if (myAddress.length === 0 || myAddress.length > MAX_CHALLENGE_ADDRESS_CHARS) {
    return { ok: false, reason: "bad-address", detail: `own address must be 1..${MAX_CHALLENGE_ADDRESS_CHARS} characters` };
  }
  if (ask.key.length !== X25519_KEY_BYTES) return { ok: false, reason: "bad-key", detail: `proof key must be ${X25519_KEY_BYTES} bytes, got ${ask.key.length}` };
  try {
    return { ok: true, proof: sealAnswerBody(myKey, ask.key, SEAL_PURPOSE.helperProof, ask.nonce, myAddress) };
  } catch (err) {
    // A low-order key cannot be sealed to.
    return { ok: false, reason: "bad-key", detail: err instanceof Error ? err.message : String(err) };
  }
}

/** Step 3, on the asker. `helperKey`: the public key of the record the proof is for; `expectedAddress`:
 *  the address dialled, in the record's form (formatNodeAddress). */
export function checkProof(expect: ProofExpect, helperKey: Uint8Array, proof: Uint8Array, expectedAddress: string): { ok: true } | { ok: false; reason: ProofFailure; detail: string } {
  if (proof.length > MAX_PROOF_BYTES) return { ok: false, reason: "too-large", detail: `proof is ${proof.length} bytes, at most ${MAX_PROOF_BYTES}` };
  if (helperKey.length !== X25519_KEY_BYTES) return { ok: false, reason: "bad-key", detail: `record key must be ${X25519_KEY_BYTES} bytes, got ${helperKey.length}` };
  return openAnswerBody(expect.ephemeral.privateKey, helperKey, SEAL_PURPOSE.helperProof, proof, expect.nonce, expectedAddress);
}

/** The address of `rec` that is the dialled TCP endpoint, or null when the record does not name it
 *  (then the proof says nothing about this record). */
export function dialledAddressOf(rec: NodeRecord, dialled: { ip: string; port: number }): NodeAddress | null {
  const ip = normalizeIp(dialled.ip);
  return checkableAddresses(rec).find((a) => a.tcpPort === dialled.port && normalizeIp(a.ip) === ip) ?? null;
}
