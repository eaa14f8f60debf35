// The raw hole-opening datagram both sides of a punch send before and during the QUIC handshake (seed 000
// §基本规则 "两端同时监听和拨号"; DESIGN §2 datagram demultiplexing, §7).
//
// An opener makes the sender's own NAT open (and keep open) a mapping and filter towards the peer; when it
// arrives, it tells the receiver the path works and from which address the peer's packets come (the port a
// symmetric NAT chose). It is authenticated, so a stranger cannot steer a spray socket or fake "the path
// works": MAC = HMAC-SHA256(sender's token, label ‖ attempt id ‖ type ‖ seq), and only the node and the two
// sides know the tokens.
//
// Layout, PUNCH_PACKET_BYTES = 64 (the smallest datagram the shared socket hands to the raw path; byte 0 has
// bits 7–6 clear so it is never QUIC, and bytes 4–7 never carry the STUN cookie):
//   0      0x24                      marker
//   1..7   "fpunch1"                 magic + version
//   8      type                      1 open, 2 spray probe
//   9..11  0
//   12..27 attempt id (16)
//   28..59 MAC (32)
//   60..63 seq (u32, big-endian)    counts the sender's packets of this attempt
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { timingSafeEqual } from "node:crypto";
import { PUNCH_ATTEMPT_ID_BYTES, PUNCH_PACKET_BYTES } from "./constants.ts";

const MARKER = 0x24;
const MAGIC = new TextEncoder().encode("fpunch1");
const MAC_LABEL = new TextEncoder().encode("findings punch opener");
const TYPE_AT = 8;
const ATTEMPT_AT = 12;
const MAC_AT = ATTEMPT_AT + PUNCH_ATTEMPT_ID_BYTES;
const MAC_BYTES = 32;
const SEQ_AT = MAC_AT + MAC_BYTES;

export const PUNCH_PACKET_TYPE = { open: 1, probe: 2 } as const;
export type PunchPacketType = (typeof PUNCH_PACKET_TYPE)[keyof typeof PUNCH_PACKET_TYPE];

export interface PunchPacketHeader {
  type: PunchPacketType;
  attemptId: Uint8Array;
  seq: number;
}

function macOf(token: Uint8Array, attemptId: Uint8Array, type: number, seq: number): Uint8Array {
  const msg = new Uint8Array(MAC_LABEL.length + PUNCH_ATTEMPT_ID_BYTES + 5);
  msg.set(MAC_LABEL, 0);
  msg.set(attemptId, MAC_LABEL.length);
  const tail = new DataView(msg.buffer, MAC_LABEL.length + PUNCH_ATTEMPT_ID_BYTES);
  tail.setUint8(0, type);
  tail.setUint32(1, seq);
  return hmac(sha256, token, msg);
}

/** A fresh opener from the side that owns `token` (its own token). */
export function encodePunchPacket(token: Uint8Array, header: PunchPacketHeader): Uint8Array {
  if (header.attemptId.length !== PUNCH_ATTEMPT_ID_BYTES) throw new RangeError(`attempt id must be ${PUNCH_ATTEMPT_ID_BYTES} bytes`);
  const out = new Uint8Array(PUNCH_PACKET_BYTES);
  out[0] = MARKER;
  out.set(MAGIC, 1);
  out[TYPE_AT] = header.type;
  out.set(header.attemptId, ATTEMPT_AT);
  out.set(macOf(token, header.attemptId, header.type, header.seq >>> 0), MAC_AT);
  new DataView(out.buffer).setUint32(SEQ_AT, header.seq >>> 0);
  return out;
}

/** The header when `buf` is shaped like an opener (not yet authenticated), else null. Never throws. */
export function peekPunchPacket(buf: Uint8Array): PunchPacketHeader | null {
  if (buf.length !== PUNCH_PACKET_BYTES || buf[0] !== MARKER) return null;
  for (let i = 0; i < MAGIC.length; i++) if (buf[1 + i] !== MAGIC[i]) return null;
  const type = buf[TYPE_AT];
  if (type !== PUNCH_PACKET_TYPE.open && type !== PUNCH_PACKET_TYPE.probe) return null;
  const seq = new DataView(buf.buffer, buf.byteOffset, buf.length).getUint32(SEQ_AT);
  return { type, attemptId: buf.slice(ATTEMPT_AT, ATTEMPT_AT + PUNCH_ATTEMPT_ID_BYTES), seq };
}

/** Whether `buf` is an opener of this attempt made with the sender's `token` (the peer's token). Never throws. */
export function isPunchPacketFrom(buf: Uint8Array, from: { token: Uint8Array; attemptId: Uint8Array }): boolean {
  const { token: senderToken, attemptId } = from;
  const h = peekPunchPacket(buf);
  if (!h || h.attemptId.length !== attemptId.length || !timingSafeEqual(h.attemptId, attemptId)) return false;
  const want = macOf(senderToken, attemptId, h.type, h.seq);
  return timingSafeEqual(buf.subarray(MAC_AT, MAC_AT + MAC_BYTES), want);
}
