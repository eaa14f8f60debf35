// Encoding and size-checked decoding of the mesh service's messages (proto/mesh.proto; DESIGN §4, STYLE §6).
// Decoders throw DecodeError / LimitError; handlers turn those into BAD_REQUEST, callers into bans.
import { create, toBinary } from "@bufbuild/protobuf";
import { isIP } from "node:net";
import { DecodeError } from "../errors.ts";
import { decodeMessage } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import {
  FindAnswerSchema,
  PeersAnswerSchema,
  PeersRequestSchema,
  SelfCheckAnswerSchema,
  SelfCheckRequestSchema,
  type FindAnswer,
  type SelfCheckAnswer,
  type SelfCheckRequest,
  type ServerGroup,
} from "../wire/index.ts";
import { encodeRecordList } from "./record-bytes.ts";
import { X25519_KEY_BYTES } from "../constants.ts";
import { PROOF_NONCE_BYTES, type ProofAsk } from "./helper-proof.ts";
import { MAX_RECORD_LIST_BYTES, MAX_SMALL_MESSAGE_BYTES, SELF_CHECK_NONCE_BYTES } from "./mesh-service-constants.ts";

/** `proof`: ask the helper to prove its record's key in the answer (helper-proof.ts). */
export function encodePeersRequest(max: number, proof?: ProofAsk): Uint8Array {
  return toBinary(PeersRequestSchema, create(PeersRequestSchema, { max, proofKey: proof?.key, proofNonce: proof?.nonce }));
}

/** The `max` of a PeersRequest (0 = "the answerer's default"). An empty payload is max 0. */
export function decodePeersRequest(bytes: Uint8Array): number {
  return decodePeersAsk(bytes).max;
}

/** A PeersRequest with its proof ask, or null when it asks none. A proof key and value come together,
 *  X25519_KEY_BYTES and PROOF_NONCE_BYTES long. */
export function decodePeersAsk(bytes: Uint8Array): { max: number; proof: ProofAsk | null } {
  const req = decodeMessage(PeersRequestSchema, bytes, "peers request", MAX_SMALL_MESSAGE_BYTES);
  if (!req.proofKey.length && !req.proofNonce.length) return { max: req.max, proof: null };
  if (req.proofKey.length !== X25519_KEY_BYTES) throw new DecodeError("peers request", `proof_key must be ${X25519_KEY_BYTES} bytes, got ${req.proofKey.length}`);
  if (req.proofNonce.length !== PROOF_NONCE_BYTES) throw new DecodeError("peers request", `proof_nonce must be ${PROOF_NONCE_BYTES} bytes, got ${req.proofNonce.length}`);
  return { max: req.max, proof: { key: req.proofKey, nonce: req.proofNonce } };
}

/** The same bytes as toBinary(PeersAnswerSchema, …), from each record's remembered encoding; `proof`
 *  and `observedIp` (fields 2, 3) after the records. */
export function encodePeersAnswer(records: readonly NodeRecord[], proof?: Uint8Array, observedIp?: string): Uint8Array {
  const list = encodeRecordList(records);
  if (!proof?.length && !observedIp) return list;
  const tail = toBinary(PeersAnswerSchema, create(PeersAnswerSchema, { proof, observedIp }));
  const out = new Uint8Array(list.length + tail.length);
  out.set(list, 0);
  out.set(tail, list.length);
  return out;
}

export function decodePeersAnswer(bytes: Uint8Array): NodeRecord[] {
  return decodePeersReply(bytes).records;
}

/** The records, the helper's proof (empty when it sent none; its size is checked by checkProof) and the
 *  IP it saw us at (null when none; an IP address or the answer does not decode). */
export function decodePeersReply(bytes: Uint8Array): { records: NodeRecord[]; proof: Uint8Array; observedIp: string | null } {
  const answer = decodeMessage(PeersAnswerSchema, bytes, "peers answer", MAX_RECORD_LIST_BYTES);
  const ip = answer.observedIp;
  if (ip && (ip.length > MAX_IP_CHARS || isIP(ip) === 0)) throw new DecodeError("peers answer", `observed_ip ${JSON.stringify(ip.slice(0, MAX_IP_CHARS))} is not an IP address`);
  return { records: unpinned(answer.records), proof: answer.proof, observedIp: ip || null };
}

/** Longest IP address text ("ffff:…" with an IPv4 tail is 45). */
const MAX_IP_CHARS = 64;

/** Encodes a find answer that fits MAX_RECORD_LIST_BYTES: records (best first) and groups are cut from the
 *  end until it does. Records are chosen by strangers (up to 32 kinds each), so a merged answer can outgrow
 *  the limit; an honest forwarder must never send what its asker would have to refuse. */
export function encodeFindAnswer(records: readonly NodeRecord[], groups: readonly ServerGroup[]): Uint8Array {
  const encode = (r: number, g: number) => toBinary(FindAnswerSchema, create(FindAnswerSchema, { records: records.slice(0, r), groups: groups.slice(0, g) }));
  let bytes = encode(records.length, groups.length);
  if (bytes.length <= MAX_RECORD_LIST_BYTES) return bytes;
  // Largest record count that fits with every group, then fewer groups if even none fit.
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    if (encode(mid, groups.length).length <= MAX_RECORD_LIST_BYTES) lo = mid;
    else hi = mid - 1;
  }
  let g = groups.length;
  while ((bytes = encode(lo, g)).length > MAX_RECORD_LIST_BYTES && g > 0) g--;
  return bytes;
}

export function decodeFindAnswer(bytes: Uint8Array): FindAnswer {
  const answer = decodeMessage(FindAnswerSchema, bytes, "find answer", MAX_RECORD_LIST_BYTES);
  unpinned(answer.records);
  return answer;
}

/** A decoded bytes field is a view into the message it came in (protobuf-es reads it as a subarray), so
 *  one record kept from a list (the candidate pool keeps a few of each answer) would keep the whole
 *  answer, and the envelope around it, alive. Each record gets its own copy of its bytes fields (one
 *  small buffer), the same values. */
function unpinned(records: NodeRecord[]): NodeRecord[] {
  for (const r of records) {
    const own = new Uint8Array(r.publicKey.length + r.spki.length + r.signature.length);
    own.set(r.publicKey, 0);
    own.set(r.spki, r.publicKey.length);
    own.set(r.signature, r.publicKey.length + r.spki.length);
    let at = 0;
    const take = (n: number) => own.subarray(at, (at += n));
    r.publicKey = take(r.publicKey.length);
    r.spki = take(r.spki.length);
    r.signature = take(r.signature.length);
  }
  return records;
}

export function encodeSelfCheckRequest(init: { tcpPort: number; udpPort: number; nonce: Uint8Array }): Uint8Array {
  return toBinary(SelfCheckRequestSchema, create(SelfCheckRequestSchema, init));
}

/** Checks the nonce length and that both ports are set (a self-check of nothing is a probe of us). */
export function decodeSelfCheckRequest(bytes: Uint8Array): SelfCheckRequest {
  const req = decodeMessage(SelfCheckRequestSchema, bytes, "self-check request", MAX_SMALL_MESSAGE_BYTES);
  if (req.nonce.length !== SELF_CHECK_NONCE_BYTES) throw new DecodeError("self-check request", `nonce must be ${SELF_CHECK_NONCE_BYTES} bytes, got ${req.nonce.length}`);
  if (req.tcpPort < 1 || req.tcpPort > 65535 || req.udpPort < 1 || req.udpPort > 65535) {
    throw new DecodeError("self-check request", "tcp_port and udp_port must be 1..65535");
  }
  return req;
}

export function encodeSelfCheckAnswer(init: { observedIp: string; tcpReachable: boolean; udpReachable: boolean }): Uint8Array {
  return toBinary(SelfCheckAnswerSchema, create(SelfCheckAnswerSchema, init));
}

export function decodeSelfCheckAnswer(bytes: Uint8Array): SelfCheckAnswer {
  return decodeMessage(SelfCheckAnswerSchema, bytes, "self-check answer", MAX_SMALL_MESSAGE_BYTES);
}
