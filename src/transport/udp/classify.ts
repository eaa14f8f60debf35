// Routes each datagram on the shared UDP socket to QUIC, STUN or the SN probe handler (DESIGN §2, RFC 7983 §7).
import { looksLikeLegacyStun, looksLikeStun } from "../../stun/index.ts";
import { SN_MAX_BYTES, SN_MIN_BYTES } from "../../nat/index.ts"; // 64 and 1072 bytes (DESIGN §6)

export type DatagramKind = "quic" | "stun" | "sn" | "unknown";

/**
 * Says which handler a datagram belongs to. Pure, allocation-free, never throws.
 *
 * Why the three cannot collide, by the first byte and then bytes 2–7:
 *
 *   QUIC  1 1 x x x x x x  long header: form bit 0x80 and fixed bit 0x40 (RFC 9000 §17.2)
 *         0 1 x x x x x x  short header: fixed bit 0x40 (RFC 9000 §17.3). We never advertise
 *                          grease_quic_bit (RFC 9287), so a peer may not clear it toward us.
 *   STUN  0 0 x x x x x x  the top two bits of every STUN message are zero (RFC 5389 §6), and
 *                          bytes 4–7 hold the magic cookie 0x2112A442.
 *   SN    0 0 r r r r s s  Rnd16[0] & 0x3C | source (DESIGN §6): bits 7–6 cleared on purpose;
 *                          bytes 1–15 are random, 64–1072 bytes in all.
 *
 * Bit 6 alone separates QUIC from the other two. STUN and SN are then told apart by looksLikeStun: the cookie
 * at bytes 4–7 *and* a declared length (bytes 2–3) equal to the datagram size minus 20 and a multiple of 4.
 * An SN packet's bytes 2–7 are random, so it passes that check with probability 2^-32 (cookie) × 2^-16
 * (length) × ~1/4 ≈ 2^-50. Such a packet goes to the STUN responder, whose parser then also needs message
 * type 0x0001 (byte 0 = 0x00 needs random bits 5–2 clear and source 0: 2^-4; byte 1 = 0x01: 2^-8), attributes
 * that tile the body exactly, and at most 548 bytes; failing any of these it is counted and dropped. The probe is lost, which the prober
 * already tolerates: SN probes are sent 2–4 at a time and the decision needs only one (DESIGN §6). An SN packet
 * that carries the cookie but not a matching length (the ordinary case of that 2^-32) is still "sn" below.
 *
 * RFC 3489 clients send no cookie. Their requests (20 bytes, 28 with CHANGE-REQUEST) are shorter than the
 * smallest SN packet, so a cookie-less STUN-shaped datagram under SN_MIN_BYTES is "stun" with no overlap.
 * Longer cookie-less RFC 3489 messages (with USERNAME/MESSAGE-INTEGRITY) land in "sn" and fail its HMAC.
 *
 * Bits 7–6 = 10 (RTP/RTCP per RFC 7983) and empty datagrams are "unknown": counted, not logged one by one.
 */
export function classifyDatagram(buf: Uint8Array): DatagramKind {
  const n = buf.length;
  if (n === 0) return "unknown";
  const b0 = buf[0];
  if ((b0 & 0x40) !== 0) return "quic";
  if ((b0 & 0x80) !== 0) return "unknown";
  if (looksLikeStun(buf)) return "stun";
  if (n >= SN_MIN_BYTES && n <= SN_MAX_BYTES) return "sn";
  if (n < SN_MIN_BYTES && looksLikeLegacyStun(buf)) return "stun";
  return "unknown";
}
