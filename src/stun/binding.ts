// STUN Binding codec: cheap check, request parse, hot-path success writer, response decode (RFC 5389 §6, §7, §10,
// §12.2, §15). The FINGERPRINT CRC is in fingerprint.ts.
import {
  MAX_STUN_MESSAGE_BYTES,
  STUN_ADDRESS_V4_VALUE_BYTES,
  STUN_ADDRESS_V6_VALUE_BYTES,
  STUN_ATTR_CHANGE_REQUEST,
  STUN_ATTR_FINGERPRINT,
  STUN_ATTR_MAPPED_ADDRESS,
  STUN_ATTR_XOR_MAPPED_ADDRESS,
  STUN_ATTRIBUTE_HEADER_BYTES,
  STUN_BINDING_REQUEST,
  STUN_BINDING_SUCCESS,
  STUN_FAMILY_IPV4,
  STUN_FAMILY_IPV6,
  STUN_FINGERPRINT_ATTR_BYTES,
  STUN_HEADER_BYTES,
  STUN_LEGACY_TRANSACTION_ID_BYTES,
  STUN_MAGIC_COOKIE,
  STUN_TRANSACTION_ID_BYTES,
} from "./constants.ts";
import { fingerprintOf, isFingerprintAt } from "./fingerprint.ts";
import { formatIPv4, formatIPv6, isV4Mapped, parseIPv4, parseIPv6 } from "../contracts/index.ts";

/** Why a datagram is not a Binding Request we answer. Values, never exceptions: the input is the network's. */
export type BindingRequestFault =
  | "truncated" //           shorter than the header, or shorter than its declared length
  | "too-large" //           over MAX_STUN_MESSAGE_BYTES
  | "not-stun" //            top two bits of byte 0 set: QUIC or something else (RFC 5389 §6)
  | "bad-length" //          declared length not a multiple of 4, or bytes after the declared end
  | "not-binding-request" // another method or class: a response, an indication (ignored, not malformed)
  | "bad-attribute" //       attributes do not tile the body exactly (RFC 5389 §15)
  | "bad-fingerprint" //     FINGERPRINT present but not last, or its CRC is wrong (RFC 5389 §15.5)
  | "change-request"; //     asks for an answer from another IP or port (see parseBindingRequest)

export type BindingRequestResult =
  | {
    readonly ok: true;
    /** View into the request: bytes 8–19 (RFC 5389), or 4–19 for an RFC 3489 request without the cookie. */
    readonly txId: Uint8Array;
    /** True for an RFC 3489 client: it gets MAPPED-ADDRESS only (RFC 5389 §12.2). */
    readonly legacy: boolean;
  }
  | { readonly ok: false; readonly fault: BindingRequestFault };

/** Why a datagram is not a usable Binding Success Response. */
export type BindingResponseFault =
  | "truncated"
  | "too-large"
  | "bad-length"
  | "not-binding-success"
  | "transaction-mismatch"
  | "bad-attribute"
  | "bad-fingerprint"
  | "no-address"
  | "bad-address";

export type BindingResponseResult =
  | { readonly ok: true; readonly ip: string; readonly port: number; readonly family: 4 | 6 }
  | { readonly ok: false; readonly fault: BindingResponseFault };

// Failures are shared frozen objects so a flood of junk allocates nothing.
const requestFailures = new Map<BindingRequestFault, BindingRequestResult>();
function requestFailure(fault: BindingRequestFault): BindingRequestResult {
  let result = requestFailures.get(fault);
  if (result === undefined) {
    result = Object.freeze({ ok: false, fault });
    requestFailures.set(fault, result);
  }
  return result;
}

function responseFailure(fault: BindingResponseFault): BindingResponseResult {
  return { ok: false, fault };
}

// ---------------------------------------------------------------------------------------------
// Cheap checks (for demultiplexing; they promise no successful parse)

/** True when the header has the RFC 5389 shape: ≥ 20 bytes, bits 7–6 of byte 0 clear, the magic cookie at
 *  bytes 4–7, and a declared length that is a multiple of 4 and matches the buffer (RFC 5389 §6). */
export function looksLikeStun(buf: Uint8Array): boolean {
  const n = buf.length;
  if (n < STUN_HEADER_BYTES || (buf[0] & 0xc0) !== 0) return false;
  if (((buf[2] << 8) | buf[3]) !== n - STUN_HEADER_BYTES || (n & 3) !== 0) return false;
  return hasMagicCookie(buf);
}

/** True when the header has the RFC 3489 shape: like looksLikeStun but without the cookie (RFC 3489 §11.1).
 *  Only meaningful where nothing else cookie-less can arrive; see classifyDatagram for the size rule. */
export function looksLikeLegacyStun(buf: Uint8Array): boolean {
  const n = buf.length;
  if (n < STUN_HEADER_BYTES || (buf[0] & 0xc0) !== 0) return false;
  if (((buf[2] << 8) | buf[3]) !== n - STUN_HEADER_BYTES || (n & 3) !== 0) return false;
  return !hasMagicCookie(buf);
}

function hasMagicCookie(buf: Uint8Array): boolean {
  return buf[4] === 0x21 && buf[5] === 0x12 && buf[6] === 0xa4 && buf[7] === 0x42;
}

/** Where the attribute at `pos` ends (its value padded to 4 bytes, RFC 5389 §15), or -1 when it overruns `n`. */
function nextAttribute(buf: Uint8Array, pos: number, n: number): number {
  if (pos + STUN_ATTRIBUTE_HEADER_BYTES > n) return -1;
  const next = pos + STUN_ATTRIBUTE_HEADER_BYTES + ((((buf[pos + 2] << 8) | buf[pos + 3]) + 3) & ~3);
  return next > n ? -1 : next;
}

// ---------------------------------------------------------------------------------------------
// Request

/**
 * Parses a Binding Request (RFC 5389 §7.3) and returns a view of its transaction id, or a fault.
 *
 * Checks, in order: header size, MAX_STUN_MESSAGE_BYTES, the first two bits, the declared length against the
 * buffer, the message type, that attributes tile the body, and FINGERPRINT when present. Other attributes
 * (PRIORITY, USERNAME, MESSAGE-INTEGRITY of ICE, as in RFC 5769 §2.1) are ignored: a public Binding responder
 * authenticates nobody, and answering is what the client asked for.
 *
 * A request without the cookie is an RFC 3489 client (RFC 5389 §12.2): accepted, flagged `legacy`.
 * CHANGE-REQUEST with a flag set asks for an answer from another IP or port (RFC 3489 §10.2, RFC 5780 §7.2).
 * One socket cannot do that, and answering from the same address would make the client believe its NAT is
 * full cone, so it is refused; with no flag set ("change nothing", sent by RFC 3489 test I) it is answered.
 */
export function parseBindingRequest(buf: Uint8Array): BindingRequestResult {
  const n = buf.length;
  if (n < STUN_HEADER_BYTES) return requestFailure("truncated");
  if (n > MAX_STUN_MESSAGE_BYTES) return requestFailure("too-large");
  if ((buf[0] & 0xc0) !== 0) return requestFailure("not-stun");
  const declared = STUN_HEADER_BYTES + ((buf[2] << 8) | buf[3]);
  if (declared > n) return requestFailure("truncated");
  if (declared < n || (declared & 3) !== 0) return requestFailure("bad-length");
  if (((buf[0] << 8) | buf[1]) !== STUN_BINDING_REQUEST) return requestFailure("not-binding-request");

  let pos = STUN_HEADER_BYTES;
  while (pos < n) {
    const next = nextAttribute(buf, pos, n);
    if (next < 0) return requestFailure("bad-attribute");
    const type = (buf[pos] << 8) | buf[pos + 1];
    if (type === STUN_ATTR_FINGERPRINT) {
      if (!isFingerprintAt(buf, pos)) return requestFailure("bad-fingerprint");
    } else if (type === STUN_ATTR_CHANGE_REQUEST && ((buf[pos + 2] << 8) | buf[pos + 3]) === 4) {
      // Flags live in the last byte: 0x04 change IP, 0x02 change port (RFC 5780 §7.2).
      if ((buf[pos + 7] & 0x06) !== 0) return requestFailure("change-request");
    }
    pos = next;
  }

  const legacy = !hasMagicCookie(buf);
  const txId = legacy ? buf.subarray(4, STUN_HEADER_BYTES) : buf.subarray(8, STUN_HEADER_BYTES);
  return { ok: true, txId, legacy };
}

/** A plain RFC 5389 Binding Request: header only, `txId` must be 12 bytes (caller's bug otherwise). */
export function encodeBindingRequest(txId: Uint8Array): Uint8Array {
  if (txId.length !== STUN_TRANSACTION_ID_BYTES) {
    throw new RangeError(`Cannot encode Binding Request: transaction id is ${txId.length} bytes, expected 12`);
  }
  const out = new Uint8Array(STUN_HEADER_BYTES);
  out[0] = STUN_BINDING_REQUEST >> 8;
  out[1] = STUN_BINDING_REQUEST & 0xff;
  writeU32(out, 4, STUN_MAGIC_COOKIE);
  out.set(txId, 8);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Success response (hot path)

/**
 * Writes a Binding Success Response into `out` and returns its length, or 0 when it cannot (an `ip` that is
 * not an address of `family`, a bad port, a txId that is neither 12 nor 16 bytes, `out` too small).
 *
 * RFC 5389 clients (12-byte txId) get XOR-MAPPED-ADDRESS (RFC 5389 §15.2) and FINGERPRINT (§15.5): MAPPED-ADDRESS
 * is there only for RFC 3489 clients (§15.1), and leaving it out keeps the answer at 40 B (IPv4) / 52 B (IPv6)
 * for a 20-byte request, which is what a spoofed request can reflect. RFC 3489 clients (16-byte txId) get MAPPED-ADDRESS only:
 * XOR-MAPPED-ADDRESS is comprehension-required and means nothing without the cookie (RFC 5389 §12.2).
 * An IPv4-mapped IPv6 source (`::ffff:a.b.c.d`, how a dual-stack socket shows IPv4 peers) is written as IPv4,
 * the address the client's NAT actually has. Allocates nothing once `ip` is in the address cache.
 */
export function writeBindingSuccess(out: Uint8Array, txId: Uint8Array, ip: string, port: number, family: 4 | 6): number {
  const legacy = txId.length === STUN_LEGACY_TRANSACTION_ID_BYTES;
  if (!legacy && txId.length !== STUN_TRANSACTION_ID_BYTES) return 0;
  if ((port & 0xffff) !== port) return 0; // also false for fractions and NaN
  const addr = addressBytes(ip, family);
  if (addr === null) return 0;
  const valueBytes = addr.length === 4 ? STUN_ADDRESS_V4_VALUE_BYTES : STUN_ADDRESS_V6_VALUE_BYTES;
  const attrBytes = STUN_ATTRIBUTE_HEADER_BYTES + valueBytes;
  const total = legacy
    ? STUN_HEADER_BYTES + attrBytes
    : STUN_HEADER_BYTES + attrBytes + STUN_FINGERPRINT_ATTR_BYTES;
  if (out.length < total) return 0;

  // Header: the length already counts FINGERPRINT, which the CRC covers (RFC 5389 §15.5).
  out[0] = STUN_BINDING_SUCCESS >> 8;
  out[1] = STUN_BINDING_SUCCESS & 0xff;
  out[2] = (total - STUN_HEADER_BYTES) >> 8;
  out[3] = (total - STUN_HEADER_BYTES) & 0xff;
  if (legacy) {
    copyBytes(out, 4, txId); // RFC 5389 §12.2: echo the 16 bytes where the cookie would be
    writeAddressAttr(out, STUN_HEADER_BYTES, STUN_ATTR_MAPPED_ADDRESS, addr, port);
    return total;
  }
  writeU32(out, 4, STUN_MAGIC_COOKIE);
  copyBytes(out, 8, txId);

  let pos = STUN_HEADER_BYTES;
  // XOR-MAPPED-ADDRESS: port XOR the cookie's top 16 bits; address XOR cookie ‖ txId (RFC 5389 §15.2).
  writeAddressAttr(out, pos, STUN_ATTR_XOR_MAPPED_ADDRESS, addr, port ^ (STUN_MAGIC_COOKIE >>> 16));
  for (let i = 0; i < addr.length; i++) out[pos + 8 + i] ^= out[4 + i]; // bytes 4–19 are cookie ‖ txId
  pos += attrBytes;

  out[pos] = STUN_ATTR_FINGERPRINT >> 8;
  out[pos + 1] = STUN_ATTR_FINGERPRINT & 0xff;
  out[pos + 2] = 0;
  out[pos + 3] = 4;
  writeU32(out, pos + 4, fingerprintOf(out, pos));
  return total;
}

function writeAddressAttr(out: Uint8Array, pos: number, type: number, addr: Uint8Array, port: number): void {
  out[pos] = type >> 8;
  out[pos + 1] = type & 0xff;
  out[pos + 2] = 0;
  out[pos + 3] = addr.length === 4 ? STUN_ADDRESS_V4_VALUE_BYTES : STUN_ADDRESS_V6_VALUE_BYTES;
  out[pos + 4] = 0; // reserved, must be zero (RFC 5389 §15.1)
  out[pos + 5] = addr.length === 4 ? STUN_FAMILY_IPV4 : STUN_FAMILY_IPV6;
  out[pos + 6] = port >> 8;
  out[pos + 7] = port & 0xff;
  copyBytes(out, pos + 8, addr);
}

// A plain loop beats TypedArray.prototype.set for the 4–16 bytes copied here (measured in Bun 1.4.5).
function copyBytes(out: Uint8Array, at: number, src: Uint8Array): void {
  for (let i = 0; i < src.length; i++) out[at + i] = src[i];
}

// ---------------------------------------------------------------------------------------------
// Response (for our own clients and tests)

/**
 * Decodes a Binding Success Response to the mapped address: XOR-MAPPED-ADDRESS, else MAPPED-ADDRESS (a server
 * from before RFC 5389 §15.2). When `txId` is given the response must carry it (RFC 5389 §7.3.3). FINGERPRINT,
 * when present, must be right. An IPv4-mapped IPv6 address is reported as IPv4.
 */
export function decodeBindingResponse(buf: Uint8Array, txId?: Uint8Array): BindingResponseResult {
  const n = buf.length;
  if (n < STUN_HEADER_BYTES) return responseFailure("truncated");
  if (n > MAX_STUN_MESSAGE_BYTES) return responseFailure("too-large");
  const declared = STUN_HEADER_BYTES + ((buf[2] << 8) | buf[3]);
  if (declared > n) return responseFailure("truncated");
  if (declared < n || (declared & 3) !== 0) return responseFailure("bad-length");
  if (((buf[0] << 8) | buf[1]) !== STUN_BINDING_SUCCESS || !hasMagicCookie(buf)) {
    return responseFailure("not-binding-success");
  }
  if (txId !== undefined) {
    if (txId.length !== STUN_TRANSACTION_ID_BYTES) return responseFailure("transaction-mismatch");
    for (let i = 0; i < STUN_TRANSACTION_ID_BYTES; i++) {
      if (buf[8 + i] !== txId[i]) return responseFailure("transaction-mismatch");
    }
  }

  let xorAt = -1;
  let plainAt = -1;
  let pos = STUN_HEADER_BYTES;
  while (pos < n) {
    const next = nextAttribute(buf, pos, n);
    if (next < 0) return responseFailure("bad-attribute");
    const type = (buf[pos] << 8) | buf[pos + 1];
    if (type === STUN_ATTR_FINGERPRINT && !isFingerprintAt(buf, pos)) return responseFailure("bad-fingerprint");
    if (type === STUN_ATTR_XOR_MAPPED_ADDRESS && xorAt < 0) xorAt = pos;
    if (type === STUN_ATTR_MAPPED_ADDRESS && plainAt < 0) plainAt = pos;
    pos = next;
  }
  if (xorAt >= 0) return readAddressAttr(buf, xorAt, true);
  if (plainAt >= 0) return readAddressAttr(buf, plainAt, false);
  return responseFailure("no-address");
}

function readAddressAttr(buf: Uint8Array, pos: number, xor: boolean): BindingResponseResult {
  const length = (buf[pos + 2] << 8) | buf[pos + 3];
  const family = buf[pos + 5];
  const size = family === STUN_FAMILY_IPV4 ? 4 : family === STUN_FAMILY_IPV6 ? 16 : 0;
  if (size === 0 || length !== 4 + size) return responseFailure("bad-address");
  let port = (buf[pos + 6] << 8) | buf[pos + 7];
  const addr = buf.slice(pos + 8, pos + 8 + size);
  if (xor) {
    port ^= STUN_MAGIC_COOKIE >>> 16;
    for (let i = 0; i < size; i++) addr[i] ^= buf[4 + i];
  }
  if (size === 16 && isV4Mapped(addr)) return { ok: true, ip: formatIPv4(addr, 12), port, family: 4 };
  return size === 4
    ? { ok: true, ip: formatIPv4(addr, 0), port, family: 4 }
    : { ok: true, ip: formatIPv6(addr), port, family: 6 };
}

function writeU32(out: Uint8Array, pos: number, value: number): void {
  out[pos] = value >>> 24;
  out[pos + 1] = (value >>> 16) & 0xff;
  out[pos + 2] = (value >>> 8) & 0xff;
  out[pos + 3] = value & 0xff;
}

// ---------------------------------------------------------------------------------------------
// Address strings ↔ bytes (parsers in contracts/ip.ts). The socket hands us the peer as a string on every datagram; parsing it costs more
// than the rest of the response, so parsed addresses are cached. Busy clients retransmit and re-probe from
// the same address. The cache is cleared when full: O(1) upkeep, and a flood of fresh addresses costs one
// parse each, what it would cost with no cache.

const ADDRESS_CACHE_MAX_ENTRIES = 4096;
const addressCache = new Map<string, Uint8Array>();

/** 4 or 16 bytes for `ip` read as `family`; IPv4-mapped IPv6 comes back as 4 bytes. Null when not an address. */
function addressBytes(ip: string, family: 4 | 6): Uint8Array | null {
  const cached = addressCache.get(ip);
  if (cached !== undefined) return cached;
  const parsed = family === 4 ? parseIPv4(ip) : parseIPv6(ip);
  if (parsed === null) return null;
  const bytes = parsed.length === 16 && isV4Mapped(parsed) ? parsed.slice(12) : parsed;
  if (addressCache.size >= ADDRESS_CACHE_MAX_ENTRIES) addressCache.clear();
  addressCache.set(ip, bytes);
  return bytes;
}
