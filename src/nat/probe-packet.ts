// SN probe packet of the STUN2 NAT test: build, recognise and verify (DESIGN §6 "Probe packet (SN)", §2 demux).
//
//   SN = Rnd16 ‖ HMAC-SHA256(K, "STUN:Cone" ‖ Rnd16 ‖ TmpN) ‖ TmpN        16 + 32 + (16…1024) bytes
//   Rnd16[0] = Rnd16[0] & 0x3C | source
//
// First byte, bit 7 first:   0 0 r r r r s s
//   - bits 7–6 are always clear: QUIC sets bit 6 (fixed bit, RFC 9000 §17.2/§17.3) on every packet, so an SN probe
//     never looks like QUIC. RFC 5389 also clears bits 7–6, but carries the magic cookie at bytes 4–7; buildProbe
//     never emits a Rnd16 with the cookie there, so an SN probe never looks like RFC 5389 either.
//   - bits 5–2 stay random (mask 0x3C);
//   - bits 1–0 carry the source: 0 passage, 1 NewPort, 2 NewHost (3 is unassigned and rejected).
// The MAC covers Rnd16 after the source bits were set, so the source is authenticated too.
//
// Keys: K is the client's fresh 32-byte key for passage and NewPort (the source server holds it); for NewHost,
// K = SHA-256(key) (`newHostKey`), so a delegate can make valid probes without ever learning the client's key,
// and a probe keyed by a delegate can never pass as a passage or NewPort probe.

import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { LimitError } from "../errors.ts";
import { STUN_MAGIC_COOKIE } from "../stun/index.ts";
import {
  SN_FIRST_BYTE_HIGH_MASK,
  SN_FIRST_BYTE_RANDOM_MASK,
  SN_KEY_BYTES,
  SN_MAC_BYTES,
  SN_MAX_BYTES,
  SN_MIN_BYTES,
  SN_RND_BYTES,
  SN_SOURCE_MASK,
  SN_TMP_MAX_BYTES,
  SN_TMP_MIN_BYTES,
} from "./constants.ts";

/** ASCII label prefixed to the MAC input, so an SN tag can never be mistaken for a tag of another use of the key
 *  (DESIGN §6: HMAC-SHA256(Key, "STUN:Cone" ‖ Rnd16 ‖ TmpN)). */
const SN_MAC_LABEL = "STUN:Cone";
/** SN source codes in bits 1–0 of the first byte (DESIGN §6). Code 3 is unassigned and rejected. */
const SN_SOURCE = {
  /** sent by the source server on the client's live QUIC 4-tuple: does raw UDP pass at all? */
  passage: 0,
  /** sent by the source server from a new port of its own IP: address-dependent filtering test */
  newPort: 1,
  /** sent by a delegate node from its own IP: endpoint-independent filtering test; keyed with SHA-256(Key) */
  newHost: 2,
} as const;

/** Who sent a probe, as coded in bits 1–0 of its first byte. */
export type ProbeSource = "passage" | "newPort" | "newHost";

/** Why a datagram is not a valid probe for our key. Size and first-byte checks come before any MAC work. */
export type ProbeRejectReason = "too-short" | "too-long" | "high-bits-set" | "unknown-source" | "bad-mac";

export type ProbeVerdict = { ok: true; source: ProbeSource } | { ok: false; reason: ProbeRejectReason };

export interface BuildProbeOptions {
  /** TmpN length in bytes, 16–1024. @default random in 16–1024 (drawn from `rand`), so probes have no fixed size */
  tmpLen?: number;
  /** Source of random bytes; tests pass a fixed one to get vectors. @default crypto.getRandomValues */
  rand?: (n: number) => Uint8Array;
}

const LABEL_BYTES = new TextEncoder().encode(SN_MAC_LABEL);
const CODE_TO_SOURCE: readonly (ProbeSource | null)[] = ["passage", "newPort", "newHost", null];

function defaultRand(n: number): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(n));
}

/** The MAC key a delegate uses for NewHost probes: SHA-256 of the client's key (DESIGN §6). */
export function newHostKey(key: Uint8Array): Uint8Array {
  return sha256(key);
}

/** True when `key` has the length of a probe key; a handler checks this before calling buildProbe. */
export function isProbeKey(key: Uint8Array): boolean {
  return key.length === SN_KEY_BYTES;
}

function macOf(macKey: Uint8Array, rnd: Uint8Array, tmp: Uint8Array): Uint8Array {
  return hmac.create(sha256, macKey).update(LABEL_BYTES).update(rnd).update(tmp).digest();
}

function hasCookieAt4(b: Uint8Array): boolean {
  return (
    b.length >= 8 &&
    ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0 === STUN_MAGIC_COOKIE
  );
}

/**
 * Builds one SN probe. `macKey` is the key as the sender holds it: the client's key for passage and NewPort,
 * `newHostKey(clientKey)` for NewHost. Throws LimitError on a key that is not 32 bytes or a TmpN length outside
 * 16–1024 (local misuse; handlers validate network input with isProbeKey first).
 */
export function buildProbe(macKey: Uint8Array, source: ProbeSource, options: BuildProbeOptions = {}): Uint8Array {
  if (macKey.length !== SN_KEY_BYTES) throw new LimitError("SN probe key", macKey.length, SN_KEY_BYTES);
  const rand = options.rand ?? defaultRand;
  let tmpLen = options.tmpLen;
  if (tmpLen === undefined) {
    const r = rand(2);
    tmpLen = SN_TMP_MIN_BYTES + (((r[0]! << 8) | r[1]!) % (SN_TMP_MAX_BYTES - SN_TMP_MIN_BYTES + 1));
  }
  if (!Number.isInteger(tmpLen) || tmpLen < SN_TMP_MIN_BYTES) throw new LimitError("SN TmpN", tmpLen, SN_TMP_MIN_BYTES);
  if (tmpLen > SN_TMP_MAX_BYTES) throw new LimitError("SN TmpN", tmpLen, SN_TMP_MAX_BYTES);

  const rnd = Uint8Array.from(rand(SN_RND_BYTES).subarray(0, SN_RND_BYTES));
  rnd[0] = (rnd[0]! & SN_FIRST_BYTE_RANDOM_MASK) | SN_SOURCE[source];
  // Rnd16 bytes 4–7 are bytes 4–7 of the packet: never let them spell the RFC 5389 cookie, so the datagram
  // classifier cannot send a probe to the Binding handler (a 2^-32 event otherwise).
  if (hasCookieAt4(rnd)) rnd[7] = rnd[7]! ^ 0x01;
  const tmp = Uint8Array.from(rand(tmpLen).subarray(0, tmpLen));

  const out = new Uint8Array(SN_RND_BYTES + SN_MAC_BYTES + tmpLen);
  out.set(rnd, 0);
  out.set(macOf(macKey, rnd, tmp), SN_RND_BYTES);
  out.set(tmp, SN_RND_BYTES + SN_MAC_BYTES);
  return out;
}

/**
 * Cheap demux predicate, no key needed: right size, bits 7–6 clear, an assigned source code and no RFC 5389
 * cookie at bytes 4–7. Never throws.
 */
export function looksLikeProbe(buf: Uint8Array): boolean {
  if (buf.length < SN_MIN_BYTES || buf.length > SN_MAX_BYTES) return false;
  const first = buf[0]!;
  if ((first & SN_FIRST_BYTE_HIGH_MASK) !== 0) return false;
  if (CODE_TO_SOURCE[first & SN_SOURCE_MASK] === null) return false;
  return !hasCookieAt4(buf);
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}

/**
 * Checks a received datagram against the client's own key: sizes first, then the first byte, then the MAC
 * (keyed with SHA-256(key) when the source bits say NewHost), compared in constant time. Never throws on
 * network input; throws LimitError only when `clientKey` itself is not 32 bytes (local misuse).
 */
export function verifyProbe(buf: Uint8Array, clientKey: Uint8Array): ProbeVerdict {
  if (clientKey.length !== SN_KEY_BYTES) throw new LimitError("SN probe key", clientKey.length, SN_KEY_BYTES);
  if (buf.length < SN_MIN_BYTES) return { ok: false, reason: "too-short" };
  if (buf.length > SN_MAX_BYTES) return { ok: false, reason: "too-long" };
  const first = buf[0]!;
  if ((first & SN_FIRST_BYTE_HIGH_MASK) !== 0) return { ok: false, reason: "high-bits-set" };
  const source = CODE_TO_SOURCE[first & SN_SOURCE_MASK];
  if (source === null || source === undefined) return { ok: false, reason: "unknown-source" };

  const macKey = source === "newHost" ? newHostKey(clientKey) : clientKey;
  const rnd = buf.subarray(0, SN_RND_BYTES);
  const tag = buf.subarray(SN_RND_BYTES, SN_RND_BYTES + SN_MAC_BYTES);
  const tmp = buf.subarray(SN_RND_BYTES + SN_MAC_BYTES);
  if (!constantTimeEqual(macOf(macKey, rnd, tmp), tag)) return { ok: false, reason: "bad-mac" };
  return { ok: true, source };
}
