// Control datagrams of the STUN2 NAT tests: the client's hellos and the server's acks (DESIGN §6 steps 1–3 and
// 生存期). They teach the server the mapped address of a fresh socket and prove the client receives there.
//
//   CTRL = Rnd16 ‖ HMAC-SHA256(K, "STUN:Ctrl" ‖ Rnd16 ‖ Body) ‖ Body          64…1072 bytes, like an SN probe
//   Rnd16[0] = Rnd16[0] & 0x3C | 3        source code 3: never a valid probe (probe-packet.ts rejects code 3)
//   Body = Token(16) ‖ Type(1) ‖ fields ‖ zero padding
//
//   type  name          direction                     fields
//   0x01  hello-port    pre-probe socket → new port    —                       padded to SMALL_HELLO_BYTES
//   0x02  hello-formal  formal socket → main port      —                       padded to FORMAL_HELLO_BYTES
//   0x03  hello-live    lifetime socket → main port    index u16               padded to SMALL_HELLO_BYTES
//   0x81  ack-port      new port → pre-probe socket    mapped
//   0x82  ack-formal    main port → formal socket      mapped, cookie(16)
//   0x83  ack-live      main port → lifetime socket    index u16, mapped, cookie(16)
//   mapped = family(1: 4 | 6) ‖ port u16 ‖ address (4 | 16 bytes)
//
// Why this shape: the shared socket's classifier already routes "bits 7–6 clear, 64–1072 bytes, no cookie" to
// the SN handler (src/transport/udp/classify.ts), so control datagrams need no new demux rule; the Token sits at a
// fixed offset, so the server finds the session (and its key) before any MAC work; the MAC label differs from
// the probes' ("STUN:Cone"), so a control datagram can never verify as a probe nor a probe as a control datagram.
// Hellos are padded so that what the server sends back to an address never exceeds what came from it.
import { hmac } from "@noble/hashes/hmac.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { isIP } from "node:net";
import { LimitError } from "../errors.ts";
import {
  NAT_COOKIE_BYTES,
  NAT_TOKEN_BYTES,
  SN_FIRST_BYTE_HIGH_MASK,
  SN_FIRST_BYTE_RANDOM_MASK,
  SN_KEY_BYTES,
  SN_MAC_BYTES,
  SN_MAX_BYTES,
  SN_MIN_BYTES,
  SN_RND_BYTES,
  SN_SOURCE_MASK,
} from "./constants.ts";
import type { Endpoint } from "./source-check.ts";
import { STUN_MAGIC_COOKIE } from "../stun/index.ts";

/** Smallest formal hello, in bytes. The formal step sends one ack (< 100 B) and 4 NewPort + MAX_DELEGATES × 3
 *  NewHost probes of at most PROBE_MAX_BYTES each (≤ 960 B) to that address: the hello alone (1072 B, the largest
 *  SN datagram) costs the client more than everything it makes the network send there. */
const FORMAL_HELLO_BYTES = 1072;
/** Smallest hello of the new-port mapping test and of a lifetime socket: each gets one ack (and a lifetime
 *  socket one probe), both under 160 bytes. */
const SMALL_HELLO_BYTES = 256;

/** Source code of control datagrams in bits 1–0 of the first byte (0–2 are the probe sources). */
export const CONTROL_SOURCE_CODE = 3;
/** MAC label of control datagrams (probes use "STUN:Cone"). */
export const CONTROL_MAC_LABEL = "STUN:Ctrl";

export const CONTROL_TYPE = {
  helloPort: 0x01,
  helloFormal: 0x02,
  helloLive: 0x03,
  ackPort: 0x81,
  ackFormal: 0x82,
  ackLive: 0x83,
} as const;

export type ControlMessage =
  | { type: "hello-port"; token: Uint8Array }
  | { type: "hello-formal"; token: Uint8Array }
  | { type: "hello-live"; token: Uint8Array; index: number }
  | { type: "ack-port"; token: Uint8Array; mapped: Endpoint }
  | { type: "ack-formal"; token: Uint8Array; mapped: Endpoint; cookie: Uint8Array }
  | { type: "ack-live"; token: Uint8Array; index: number; mapped: Endpoint; cookie: Uint8Array };

/** "short-hello": a hello under its padding, which the anti-amplification argument above relies on. */
export type ControlRejectReason = "not-control" | "bad-mac" | "bad-body" | "short-hello";

const LABEL = new TextEncoder().encode(CONTROL_MAC_LABEL);
const BODY_AT = SN_RND_BYTES + SN_MAC_BYTES;
const TYPE_AT = BODY_AT + NAT_TOKEN_BYTES;

function macOf(key: Uint8Array, rnd: Uint8Array, body: Uint8Array): Uint8Array {
  return hmac.create(sha256, key).update(LABEL).update(rnd).update(body).digest();
}

/** Cheap check, no key: size of an SN datagram, bits 7–6 clear, source code 3, no RFC 5389 cookie. Never throws. */
export function looksLikeControl(buf: Uint8Array): boolean {
  if (buf.length < SN_MIN_BYTES || buf.length > SN_MAX_BYTES) return false;
  const b0 = buf[0]!;
  if ((b0 & SN_FIRST_BYTE_HIGH_MASK) !== 0 || (b0 & SN_SOURCE_MASK) !== CONTROL_SOURCE_CODE) return false;
  return !hasCookieAt4(buf);
}

/** The session token of a control-shaped datagram (a view into `buf`), or null. Never throws. */
export function controlToken(buf: Uint8Array): Uint8Array | null {
  return looksLikeControl(buf) ? buf.subarray(BODY_AT, BODY_AT + NAT_TOKEN_BYTES) : null;
}

function hasCookieAt4(b: Uint8Array): boolean {
  return ((b[4]! << 24) | (b[5]! << 16) | (b[6]! << 8) | b[7]!) >>> 0 === STUN_MAGIC_COOKIE;
}

function encodeMapped(e: Endpoint): Uint8Array {
  const family = isIP(e.ip);
  if (family === 4) {
    const out = new Uint8Array(7);
    out[0] = 4;
    out[1] = e.port >> 8;
    out[2] = e.port & 0xff;
    e.ip.split(".").forEach((p, i) => (out[3 + i] = Number(p)));
    return out;
  }
  if (family === 6) {
    const out = new Uint8Array(19);
    out[0] = 6;
    out[1] = e.port >> 8;
    out[2] = e.port & 0xff;
    out.set(ipv6Bytes(e.ip), 3);
    return out;
  }
  throw new TypeError(`Cannot encode ${e.ip}: not an IP address`);
}

function ipv6Bytes(ip: string): Uint8Array {
  // The URL parser expands and validates IPv6 text; 8 groups of 16 bits follow.
  const host = new URL(`http://[${ip.replace(/%.*$/, "")}]/`).hostname.slice(1, -1);
  const [head, tail] = host.includes("::") ? host.split("::") : [host, undefined];
  const h = head ? head.split(":") : [];
  const t = tail ? tail.split(":") : [];
  const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill("0"), ...t];
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    // An embedded IPv4 tail (::ffff:1.2.3.4) is printed by the URL parser as hex groups, so no dots here.
    const v = parseInt(g, 16);
    out[2 * i] = v >> 8;
    out[2 * i + 1] = v & 0xff;
  });
  return out;
}

function decodeMapped(b: Uint8Array, at: number): { mapped: Endpoint; next: number } | null {
  const family = b[at];
  if (family === 4) {
    if (at + 7 > b.length) return null;
    const port = (b[at + 1]! << 8) | b[at + 2]!;
    const ip = `${b[at + 3]}.${b[at + 4]}.${b[at + 5]}.${b[at + 6]}`;
    return { mapped: { ip, port }, next: at + 7 };
  }
  if (family === 6) {
    if (at + 19 > b.length) return null;
    const port = (b[at + 1]! << 8) | b[at + 2]!;
    const groups: string[] = [];
    for (let i = 0; i < 8; i++) groups.push(((b[at + 3 + 2 * i]! << 8) | b[at + 4 + 2 * i]!).toString(16));
    // Canonical (RFC 5952) text via the URL parser.
    const ip = new URL(`http://[${groups.join(":")}]/`).hostname.slice(1, -1);
    return { mapped: { ip, port }, next: at + 19 };
  }
  return null;
}

/** Builds one control datagram. Throws LimitError on a key or token of the wrong length (local misuse). */
export function buildControl(key: Uint8Array, msg: ControlMessage, rand: (n: number) => Uint8Array = (n) => crypto.getRandomValues(new Uint8Array(n))): Uint8Array {
  if (key.length !== SN_KEY_BYTES) throw new LimitError("control key", key.length, SN_KEY_BYTES);
  if (msg.token.length !== NAT_TOKEN_BYTES) throw new LimitError("control token", msg.token.length, NAT_TOKEN_BYTES);
  const parts: Uint8Array[] = [msg.token];
  let total = 0;
  const u16 = (n: number) => Uint8Array.of(n >> 8, n & 0xff);
  switch (msg.type) {
    case "hello-port":
      parts.push(Uint8Array.of(CONTROL_TYPE.helloPort));
      total = SMALL_HELLO_BYTES;
      break;
    case "hello-formal":
      parts.push(Uint8Array.of(CONTROL_TYPE.helloFormal));
      total = FORMAL_HELLO_BYTES;
      break;
    case "hello-live":
      parts.push(Uint8Array.of(CONTROL_TYPE.helloLive), u16(msg.index));
      total = SMALL_HELLO_BYTES;
      break;
    case "ack-port":
      parts.push(Uint8Array.of(CONTROL_TYPE.ackPort), encodeMapped(msg.mapped));
      break;
    case "ack-formal":
      parts.push(Uint8Array.of(CONTROL_TYPE.ackFormal), encodeMapped(msg.mapped), msg.cookie);
      break;
    case "ack-live":
      parts.push(Uint8Array.of(CONTROL_TYPE.ackLive), u16(msg.index), encodeMapped(msg.mapped), msg.cookie);
      break;
  }
  const bodyLen = parts.reduce((n, p) => n + p.length, 0);
  const size = Math.max(total, BODY_AT + bodyLen, SN_MIN_BYTES);
  const out = new Uint8Array(size);
  const rnd = Uint8Array.from(rand(SN_RND_BYTES).subarray(0, SN_RND_BYTES));
  rnd[0] = (rnd[0]! & SN_FIRST_BYTE_RANDOM_MASK) | CONTROL_SOURCE_CODE;
  if (((rnd[4]! << 24) | (rnd[5]! << 16) | (rnd[6]! << 8) | rnd[7]!) >>> 0 === STUN_MAGIC_COOKIE) rnd[7] = rnd[7]! ^ 0x01;
  out.set(rnd, 0);
  let at = BODY_AT;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  out.set(macOf(key, rnd, out.subarray(BODY_AT)), SN_RND_BYTES);
  return out;
}

function constantTimeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i]! ^ b[i]!;
  return d === 0;
}

/** Verifies and decodes a control datagram with the session key. Never throws on network input. */
export function decodeControl(buf: Uint8Array, key: Uint8Array): { ok: true; msg: ControlMessage } | { ok: false; reason: ControlRejectReason } {
  if (!looksLikeControl(buf) || key.length !== SN_KEY_BYTES || buf.length < TYPE_AT + 1) return { ok: false, reason: "not-control" };
  const rnd = buf.subarray(0, SN_RND_BYTES);
  const tag = buf.subarray(SN_RND_BYTES, BODY_AT);
  if (!constantTimeEqual(macOf(key, rnd, buf.subarray(BODY_AT)), tag)) return { ok: false, reason: "bad-mac" };
  const token = buf.slice(BODY_AT, TYPE_AT);
  const type = buf[TYPE_AT];
  // A hello shorter than its padding would let its sender get back more than it sent: refused, not answered.
  const least = type === CONTROL_TYPE.helloFormal ? FORMAL_HELLO_BYTES : type === CONTROL_TYPE.helloPort || type === CONTROL_TYPE.helloLive ? SMALL_HELLO_BYTES : 0;
  if (buf.length < least) return { ok: false, reason: "short-hello" };
  const at = TYPE_AT + 1;
  const u16 = (i: number) => (i + 2 <= buf.length ? (buf[i]! << 8) | buf[i + 1]! : -1);
  const bad = { ok: false as const, reason: "bad-body" as const };
  switch (type) {
    case CONTROL_TYPE.helloPort:
      return { ok: true, msg: { type: "hello-port", token } };
    case CONTROL_TYPE.helloFormal:
      return { ok: true, msg: { type: "hello-formal", token } };
    case CONTROL_TYPE.helloLive: {
      const index = u16(at);
      return index < 0 ? bad : { ok: true, msg: { type: "hello-live", token, index } };
    }
    case CONTROL_TYPE.ackPort: {
      const m = decodeMapped(buf, at);
      return m ? { ok: true, msg: { type: "ack-port", token, mapped: m.mapped } } : bad;
    }
    case CONTROL_TYPE.ackFormal: {
      const m = decodeMapped(buf, at);
      if (!m || m.next + NAT_COOKIE_BYTES > buf.length) return bad;
      return { ok: true, msg: { type: "ack-formal", token, mapped: m.mapped, cookie: buf.slice(m.next, m.next + NAT_COOKIE_BYTES) } };
    }
    case CONTROL_TYPE.ackLive: {
      const index = u16(at);
      const m = index < 0 ? null : decodeMapped(buf, at + 2);
      if (!m || m.next + NAT_COOKIE_BYTES > buf.length) return bad;
      return { ok: true, msg: { type: "ack-live", token, index, mapped: m.mapped, cookie: buf.slice(m.next, m.next + NAT_COOKIE_BYTES) } };
    }
    default:
      return bad;
  }
}

/** True for hello types (client → server), false for acks. */
export function isHello(msg: ControlMessage): boolean {
  return msg.type.startsWith("hello");
}
