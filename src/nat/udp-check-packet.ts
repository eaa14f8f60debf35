// The datagrams of the probe's UDP check (probe-plan.ts step udp-check): "does any UDP get to a server and back?",
// asked two ways that every Findings server answers statelessly on its UDP port:
//   - an RFC 5389 Binding Request (the server's STUN responder answers with a Binding Success);
//   - a QUIC long-header packet of a reserved version (RFC 9000 §15: versions 0x?a?a?a?a exist to exercise
//     version negotiation), padded to 1200 bytes (RFC 9000 §14.1): the server's QUIC stack answers with a Version
//     Negotiation packet (RFC 9000 §17.2.1) that echoes our connection ids. A middlebox that passes only QUIC
//     (QUIC-Only) drops the first and passes the second, so together they tell "no UDP at all" apart.
// Both answers are bound to random values of this run (the transaction id, our source connection id), which an
// off-path sender cannot guess.
import { decodeBindingResponse, encodeBindingRequest, STUN_TRANSACTION_ID_BYTES } from "../stun/index.ts";

/** RFC 9000 §15: a version of the form 0x?a?a?a?a is reserved to force version negotiation. */
export const QUIC_GREASE_VERSION = 0x1a2a3a4a;
/** RFC 9000 §14.1: a client's Initial datagram carries at least 1200 bytes; servers may ignore shorter ones. */
export const QUIC_MIN_INITIAL_DATAGRAM_BYTES = 1200;
/** Connection id length we send (RFC 9000 §17.2: at most 20 bytes in QUIC v1). */
const CID_BYTES = 16;
/** RFC 9000 §17.2: long header form bit and fixed bit; packet type bits 5–4 = 00 (Initial). */
const LONG_HEADER_INITIAL = 0xc0;
/** Largest answer read (a Version Negotiation lists a few versions; a Binding Success is under 100 bytes). */
const MAX_ANSWER_BYTES = 1500;

export interface UdpCheckPackets {
  binding: Uint8Array;
  quicVersionProbe: Uint8Array;
  /** What the answer to each proves: "stun" (any UDP) or "quic" (QUIC-shaped UDP). */
  match(buf: Uint8Array): "stun" | "quic" | null;
}

/** The two requests of one run, and the matcher of their answers. */
export function udpCheckPackets(random: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n))): UdpCheckPackets {
  const txId = random(STUN_TRANSACTION_ID_BYTES);
  const dcid = random(CID_BYTES);
  const scid = random(CID_BYTES);
  const q = new Uint8Array(QUIC_MIN_INITIAL_DATAGRAM_BYTES);
  let i = 0;
  q[i++] = LONG_HEADER_INITIAL;
  new DataView(q.buffer).setUint32(i, QUIC_GREASE_VERSION);
  i += 4;
  q[i++] = CID_BYTES;
  q.set(dcid, i);
  i += CID_BYTES;
  q[i++] = CID_BYTES;
  q.set(scid, i);
  i += CID_BYTES;
  q[i++] = 0; // token length (varint 0); the rest is padding a server never reads before negotiating
  return {
    binding: encodeBindingRequest(txId),
    quicVersionProbe: q,
    match(buf) {
      if (buf.length === 0 || buf.length > MAX_ANSWER_BYTES) return null;
      if ((buf[0]! & 0x80) !== 0) return isVersionNegotiation(buf, scid) ? "quic" : null;
      return decodeBindingResponse(buf, txId).ok ? "stun" : null;
    },
  };
}

/** RFC 9000 §17.2.1: long header, version 0, and the destination connection id is the source id we sent. */
function isVersionNegotiation(buf: Uint8Array, ourScid: Uint8Array): boolean {
  if (buf.length < 6 + ourScid.length || buf[1] !== 0 || buf[2] !== 0 || buf[3] !== 0 || buf[4] !== 0) return false;
  if (buf[5] !== ourScid.length) return false;
  for (let k = 0; k < ourScid.length; k++) if (buf[6 + k] !== ourScid[k]) return false;
  return true;
}
