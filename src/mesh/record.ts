// Node records: build, sign, decode and verify the NodeRecord shared in the mesh (DESIGN §4, seed 001 §公钥广播与验证).
//
// What the signature proves. A record (format RECORD_FORMAT_VERSION) is signed with XEdDSA by the
// node's X25519 key itself (identity/xeddsa.ts) and verifies against `public_key`, the node's
// identity. So anyone can check offline, from the record alone, that the owner of `public_key`
// published exactly these fields: a relay cannot alter a record (stakes, kinds, SPKI, addresses,
// seq) nor re-sign someone else's record with a key of its own. What the signature cannot prove is
// that the node is still at the address it claims: the key challenge (key-challenge.ts) proves that,
// and records expire (`maxAgeMs` after `issued_at_ms`; nodes re-sign on a schedule), so a moved or
// re-keyed node's old record dies out by itself.
//
// Format 1 records (a separate Ed25519 `signing_key`, field 12, now reserved) have no version field
// and are refused as "old-format"; so are records of any other version.
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { isIP } from "node:net";
import { DEFAULTS } from "../config/index.ts";
import { X25519_KEY_BYTES } from "../constants.ts";
import { ConfigError, DecodeError, LimitError } from "../errors.ts";
import { memo, memoKey, nodeIdOf, xeddsaSign, xeddsaVerify, XEDDSA_SIGNATURE_BYTES, type NodeKey } from "../identity/index.ts";
import { decodeMessage } from "../wire/index.ts";
import { labelled, signedBytesOf } from "./record-signed.ts";
import { NatClass, NodeRecordSchema, type NodeAddress, type NodeRecord } from "../wire/index.ts";
import { isValidKind, MAX_IDENTITY_ID_CHARS, MAX_RECORD_KINDS, MAX_STAKE_ADDRESS_CHARS } from "../wire/index.ts";

/** Name tag of a Findings service node in its record (STUN2 seed §节点信息). */
const SERVICE_NAME_TAG = "stun2-service";

/** Largest encoded NodeRecord accepted, in bytes. A typical record is ~250 B; 4 KB leaves room for
 *  dozens of kinds and stakes, while a shortlist answer must still fit MAX_ENVELOPE_BYTES. The count
 *  and length caps below can add up to more than this; the byte cap is checked too. */
export const MAX_RECORD_BYTES = 4096;
/** Addresses per record: one per family plus a spare each; more is a padding attack. */
export const MAX_RECORD_ADDRESSES = 4;
/** Protocols per record ("quic", "http2", with room for a few more). */
const MAX_RECORD_PROTOCOLS = 8;
/** Longest protocol name, in characters. */
const MAX_PROTOCOL_CHARS = 16;
/** How far in the future a record's issued_at_ms may lie: peers' clocks drift, 5 min is generous. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** Largest seq accepted: seq is a JSON number in CLI output and status, so it must stay exact. */
export const MAX_RECORD_SEQ = Number.MAX_SAFE_INTEGER;
/** SHA-256 length: node id, SPKI pin. */
const SHA256_BYTES = 32;
/** The record format this node writes and accepts: 2 = signed with XEdDSA by `public_key`. */
export const RECORD_FORMAT_VERSION = 2;

export type { NodeRecord, NodeAddress };
export { NatClass };

/** Protocols a node advertises unless told otherwise (DESIGN §4). */
export const DEFAULT_PROTOCOLS = ["quic", "http2"] as const;

export interface RecordAddressInit {
  ip: string;
  /** QUIC / STUN port; 0 = none. */
  udpPort: number;
  /** TLS (mesh WSS, /whoami) port; 0 = none. */
  tcpPort: number;
}

export interface RecordInit {
  addresses: readonly RecordAddressInit[];
  /** SHA-256 of the run certificate's SPKI: 32 bytes or 64 hex digits (RunCertificate.spki). */
  spki: Uint8Array | string;
  /** @default NatClass.NAT_PUBLIC */
  nat?: NatClass;
  /** @default DEFAULT_PROTOCOLS */
  protocols?: readonly string[];
  /** App kinds served. @default [] */
  kinds?: readonly string[];
  /** kind ("*" = default) → reward address; empty addresses are left out (config: served, paid to "*"). */
  stakes?: Readonly<Record<string, string>>;
  /** @default "" */
  identityId?: string;
  /** Use nextRecordSeq(previous, now). */
  seq: number | bigint;
  /** Issue time, ms since the epoch. */
  now: number;
}

export type RecordRejectReason =
  | "too-large"
  | "bad-public-key"
  | "wrong-node-id"
  | "bad-name-tag"
  | "bad-protocol"
  | "bad-address"
  | "bad-spki"
  | "bad-nat"
  | "bad-kind"
  | "bad-stake"
  | "bad-identity-id"
  | "bad-seq"
  | "from-future"
  | "expired"
  | "old-format"
  | "bad-signature";

export type RecordCheck = { ok: true } | { ok: false; reason: RecordRejectReason; detail: string };

export interface VerifyRecordOptions {
  /** The node id the record must have (e.g. the id the peer was dialled by). */
  expectedNodeId?: string;
  /** Oldest accepted record, in ms since issued_at_ms (Infinity: no limit). @default record_max_age_s of defaults.toml */
  maxAgeMs?: number;
}

/** Refusals that say nothing against whoever relayed the record: clocks differ (a record can expire
 *  or look early on the way), and a node still on an older format is not lying. Every other refusal
 *  is something the relay could have checked itself before passing the record on. */
export function isRelayBlameless(reason: string): boolean {
  return reason === "from-future" || reason === "expired" || reason === "old-format";
}

// ---- seq ----

/** A seq that grows across restarts without stored state: the clock in ms, or previous + 1 if the
 *  clock went back. */
export function nextRecordSeq(previous: number | bigint | undefined, now: number): bigint {
  const prev = previous === undefined ? 0n : BigInt(previous);
  const clock = BigInt(Math.floor(now));
  return clock > prev ? clock : prev + 1n;
}

// ---- build and sign ----

/** Builds and signs this node's record. Throws ConfigError naming the field when the init would
 *  make a record that peers reject (it comes from config: stakes, kinds, identity id). */
export function buildRecord(key: NodeKey, init: RecordInit): NodeRecord {
  const spki = typeof init.spki === "string" ? hexToBytesStrict(init.spki, "spki") : init.spki;
  const stakes = Object.entries(init.stakes ?? {})
    .filter(([, address]) => address !== "")
    .map(([kind, address]) => ({ kind, address }));
  const rec = create(NodeRecordSchema, {
    publicKey: key.publicKey,
    nameTag: SERVICE_NAME_TAG,
    protocols: [...(init.protocols ?? DEFAULT_PROTOCOLS)],
    addresses: init.addresses.map((a) => ({ ip: a.ip, udpPort: a.udpPort, tcpPort: a.tcpPort })),
    spki,
    nat: init.nat ?? NatClass.NAT_PUBLIC,
    kinds: [...(init.kinds ?? [])],
    stakes,
    identityId: init.identityId ?? "",
    seq: BigInt(init.seq),
    issuedAtMs: BigInt(Math.floor(init.now)),
    version: RECORD_FORMAT_VERSION,
  });
  const signed = signRecord(rec, key.privateKey);
  const check = verifyRecord(signed, init.now, { expectedNodeId: key.nodeId });
  if (!check.ok) throw new ConfigError(`record.${check.reason.replace(/^bad-/, "")}`, check.detail);
  return signed;
}

/** Returns a copy of `rec` in the current format, signed (XEdDSA) with the X25519 private key. The
 *  signature verifies only when `rec.public_key` is that key's public key. */
export function signRecord(rec: NodeRecord, x25519Private: Uint8Array): NodeRecord {
  const out = clone(NodeRecordSchema, rec);
  out.version = RECORD_FORMAT_VERSION;
  out.signature = new Uint8Array(0);
  out.signature = xeddsaSign(x25519Private, signedBytes(out));
  return out;
}

/** What the signature covers: the purpose label, a zero byte, then the record encoded with an empty
 *  signature. protobuf-es encodes fields in number order and keeps unknown fields, so a verifier
 *  that decodes and re-encodes gets the signer's bytes back; the label keeps a record signature from
 *  being valid for anything else signed with this key. */
function signedBytes(rec: NodeRecord, encoded = toBinary(NodeRecordSchema, rec)): Uint8Array {
  const fast = signedBytesOf(encoded);
  if (fast) return fast;
  const copy = clone(NodeRecordSchema, rec);
  copy.signature = new Uint8Array(0);
  return labelled(toBinary(NodeRecordSchema, copy));
}

// ---- decode and verify ----

/** Decodes one record; LimitError over MAX_RECORD_BYTES, DecodeError when it does not parse. */
export function decodeRecord(bytes: Uint8Array): NodeRecord {
  return decodeMessage(NodeRecordSchema, bytes, "node record", MAX_RECORD_BYTES);
}

export function encodeRecord(rec: NodeRecord): Uint8Array {
  return toBinary(NodeRecordSchema, rec);
}

/** Decodes and verifies bytes from the network; never throws. Also refuses bytes that are not the
 *  canonical encoding of what they decode to: the protobuf decoder tolerates e.g. a wrong wire type
 *  in a tag, which would let one signed record travel as many different byte strings. (Records
 *  nested in other messages are checked by content only; the signature covers the content, so such
 *  variants never change what a record says.) */
export function parseRecord(bytes: Uint8Array, now: number, options?: VerifyRecordOptions): { ok: true; record: NodeRecord } | { ok: false; reason: RecordRejectReason | "undecodable" | "non-canonical"; detail: string } {
  let rec: NodeRecord;
  try {
    rec = decodeRecord(bytes);
  } catch (err) {
    if (err instanceof LimitError) return { ok: false, reason: "too-large", detail: err.message };
    return { ok: false, reason: "undecodable", detail: err instanceof DecodeError ? err.message : String(err) };
  }
  if (!isSameBytes(encodeRecord(rec), bytes)) return { ok: false, reason: "non-canonical", detail: "record bytes are not in canonical encoding" };
  const check = verifyRecord(rec, now, options);
  return check.ok ? { ok: true, record: rec } : check;
}

/** Checks sizes, syntax, time and signature of a record (cheap checks first, the signature last).
 *  Never throws. A record that passes may still carry a public key that is not the signer's: see the
 *  file comment, the caller runs the key challenge before trusting it. */
export function verifyRecord(rec: NodeRecord, now: number, options: VerifyRecordOptions = {}): RecordCheck {
  try {
    return verifyUnsafe(rec, now, options);
  } catch (err) {
    // A hand-made object with wrong types (not from fromBinary) must not crash the caller either.
    return reject("bad-signature", `record could not be checked: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function verifyUnsafe(rec: NodeRecord, now: number, options: VerifyRecordOptions): RecordCheck {
  const encoded = toBinary(NodeRecordSchema, rec);
  const size = encoded.length;
  if (size > MAX_RECORD_BYTES) return reject("too-large", `record is ${size} bytes, limit is ${MAX_RECORD_BYTES}`);
  if (rec.version !== RECORD_FORMAT_VERSION) return reject("old-format", `record format ${rec.version} is not accepted (this node speaks format ${RECORD_FORMAT_VERSION})`);
  if (rec.publicKey.length !== X25519_KEY_BYTES) return reject("bad-public-key", `public key must be ${X25519_KEY_BYTES} bytes, got ${rec.publicKey.length}`);
  if (options.expectedNodeId !== undefined && recordNodeId(rec) !== options.expectedNodeId.toLowerCase()) {
    return reject("wrong-node-id", `record is for node ${recordNodeId(rec)}, expected ${options.expectedNodeId}`);
  }
  if (rec.nameTag !== SERVICE_NAME_TAG) return reject("bad-name-tag", `name tag must be ${JSON.stringify(SERVICE_NAME_TAG)}, got ${JSON.stringify(rec.nameTag.slice(0, 32))}`);

  if (rec.protocols.length > MAX_RECORD_PROTOCOLS) return reject("bad-protocol", `${rec.protocols.length} protocols, limit is ${MAX_RECORD_PROTOCOLS}`);
  for (const p of rec.protocols) {
    if (!isValidToken(p, MAX_PROTOCOL_CHARS, PROTOCOL_PATTERN)) return reject("bad-protocol", `protocol ${JSON.stringify(p.slice(0, 32))} is not allowed`);
  }

  if (rec.addresses.length === 0) return reject("bad-address", "record has no address");
  if (rec.addresses.length > MAX_RECORD_ADDRESSES) return reject("bad-address", `${rec.addresses.length} addresses, limit is ${MAX_RECORD_ADDRESSES}`);
  for (const a of rec.addresses) {
    const why = addressProblem(a);
    if (why) return reject("bad-address", why);
  }

  if (rec.spki.length !== SHA256_BYTES) return reject("bad-spki", `SPKI pin must be ${SHA256_BYTES} bytes, got ${rec.spki.length}`);
  // Only publicly reachable nodes serve and mesh (DESIGN §4: Public | FullC for service nodes).
  if (rec.nat !== NatClass.NAT_PUBLIC && rec.nat !== NatClass.NAT_FULL_CONE) return reject("bad-nat", `NAT class ${rec.nat} cannot serve (only Public or FullC)`);

  if (rec.kinds.length > MAX_RECORD_KINDS) return reject("bad-kind", `${rec.kinds.length} kinds, limit is ${MAX_RECORD_KINDS}`);
  for (const k of rec.kinds) if (!isValidKind(k)) return reject("bad-kind", `kind ${JSON.stringify(k.slice(0, 80))} is not allowed`);

  if (rec.stakes.length > MAX_RECORD_KINDS) return reject("bad-stake", `${rec.stakes.length} stakes, limit is ${MAX_RECORD_KINDS}`);
  const stakeKinds = new Set<string>();
  for (const s of rec.stakes) {
    if (s.kind !== "*" && !isValidKind(s.kind)) return reject("bad-stake", `stake kind ${JSON.stringify(s.kind.slice(0, 80))} is not allowed`);
    if (stakeKinds.has(s.kind)) return reject("bad-stake", `two stakes for kind ${s.kind}`);
    stakeKinds.add(s.kind);
    if (!isValidToken(s.address, MAX_STAKE_ADDRESS_CHARS, STAKE_ADDRESS_PATTERN)) return reject("bad-stake", `stake address for ${s.kind} must be 1..${MAX_STAKE_ADDRESS_CHARS} printable ASCII characters`);
  }

  if (rec.identityId.length > MAX_IDENTITY_ID_CHARS || CONTROL_CHARS.test(rec.identityId)) {
    return reject("bad-identity-id", `identity id must be at most ${MAX_IDENTITY_ID_CHARS} characters without control characters`);
  }

  if (rec.seq < 1n || rec.seq > BigInt(MAX_RECORD_SEQ)) return reject("bad-seq", `seq ${rec.seq} is out of range 1..${MAX_RECORD_SEQ}`);
  if (rec.issuedAtMs < 1n) return reject("bad-seq", "issued_at_ms is missing");
  if (rec.issuedAtMs > BigInt(Math.floor(now + MAX_CLOCK_SKEW_MS))) {
    return reject("from-future", `record was issued ${Number(rec.issuedAtMs) - now} ms in the future (allowed skew ${MAX_CLOCK_SKEW_MS} ms)`);
  }
  const maxAgeMs = options.maxAgeMs ?? DEFAULTS.record_max_age_s * 1000;
  if (Number.isFinite(maxAgeMs) && rec.issuedAtMs < BigInt(Math.floor(now - maxAgeMs))) {
    return reject("expired", `record was issued ${now - Number(rec.issuedAtMs)} ms ago (limit ${maxAgeMs} ms)`);
  }

  if (rec.signature.length !== XEDDSA_SIGNATURE_BYTES) return reject("bad-signature", `signature must be ${XEDDSA_SIGNATURE_BYTES} bytes, got ${rec.signature.length}`);
  // The encoding holds the signature, the key and the signed fields: the whole input of the check.
  const good = memo("recordVerify", () => memoKey(encoded), () => xeddsaVerify(rec.publicKey, signedBytes(rec, encoded), rec.signature));
  if (!good) return reject("bad-signature", "signature does not match the record and its public key");
  return { ok: true };
}

function reject(reason: RecordRejectReason, detail: string): RecordCheck {
  return { ok: false, reason, detail };
}

// ---- field syntax ----

const PROTOCOL_PATTERN = /^[a-z0-9][a-z0-9.-]*$/;
/** Reward addresses of all common chains are printable ASCII without spaces. */
const STAKE_ADDRESS_PATTERN = /^[\x21-\x7e]+$/;
const CONTROL_CHARS = /\p{Cc}/u;

function isValidToken(text: string, maxChars: number, pattern: RegExp): boolean {
  return text.length >= 1 && text.length <= maxChars && pattern.test(text);
}

function addressProblem(a: NodeAddress): string | null {
  if (isIP(a.ip) === 0) return `${JSON.stringify(a.ip.slice(0, 64))} is not an IP address`;
  if (a.udpPort > 65535 || a.tcpPort > 65535) return `port out of range in ${formatNodeAddress(a)}`;
  if (a.udpPort === 0 && a.tcpPort === 0) return `address ${a.ip} has no port`;
  return null;
}

function hexToBytesStrict(hex: string, what: string): Uint8Array {
  if (!/^(?:[0-9a-fA-F]{2})*$/.test(hex)) throw new ConfigError(`record.${what}`, `${JSON.stringify(hex.slice(0, 80))} is not hex`);
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

// ---- helpers ----

/** Hex SHA-256 of the record's public key (DESIGN §3). */
export function recordNodeId(rec: NodeRecord): string {
  return nodeIdOf(rec.publicKey);
}

/** "ip:udp/tcp", or "[v6]:udp/tcp". */
export function formatNodeAddress(a: NodeAddress | RecordAddressInit): string {
  const host = a.ip.includes(":") ? `[${a.ip}]` : a.ip;
  return `${host}:${a.udpPort}/${a.tcpPort}`;
}

/** The record's first (primary) address as "ip:udp/tcp"; "" when it has none. Both sides of a key
 *  challenge use this form. */
export function recordAddress(rec: NodeRecord): string {
  const first = rec.addresses[0];
  return first ? formatNodeAddress(first) : "";
}

/** The record's primary checkable address: its first address with a TCP port. A checker proves each
 *  address it can dial (checkableAddresses); this one names the record when no check result is at hand. */
export function provenAddress(rec: NodeRecord): NodeAddress | null {
  return rec.addresses.find((a) => a.tcpPort !== 0) ?? null;
}

/** The addresses a key check can prove: those with a TCP port, each endpoint once. */
export function checkableAddresses(rec: NodeRecord): NodeAddress[] {
  const seen = new Set<string>();
  const out: NodeAddress[] = [];
  for (const a of rec.addresses) {
    if (a.tcpPort === 0) continue;
    const key = `${unmapIp(a.ip)}/${a.tcpPort}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(a);
  }
  return out;
}

/** The address of our own record a key-check answer vouches for: the one whose IP is the local end of
 *  the connection the challenge came on; else (behind a full-cone NAT the local IP is private) the
 *  first of the family the connection uses (local end, or the remote end when the local one is not
 *  known); else the first address. "" when the record has none. */
export function addressReachedAt(rec: NodeRecord, reached: { localIp?: string; remoteIp?: string }): string {
  const local = reached.localIp ? unmapIp(reached.localIp) : "";
  const exact = local ? rec.addresses.find((a) => unmapIp(a.ip) === local) : undefined;
  if (exact) return formatNodeAddress(exact);
  const probe = local || (reached.remoteIp ? unmapIp(reached.remoteIp) : "");
  const family = probe ? isIP(probe) : 0;
  const sameFamily = family ? rec.addresses.find((a) => isIP(unmapIp(a.ip)) === family) : undefined;
  return sameFamily ? formatNodeAddress(sameFamily) : recordAddress(rec);
}

/** Lower-case, and "::ffff:1.2.3.4" → "1.2.3.4". */
function unmapIp(ip: string): string {
  const lower = ip.toLowerCase();
  return lower.startsWith("::ffff:") && isIP(lower.slice(7)) === 4 ? lower.slice(7) : lower;
}

/** The stake address for `kind`: its own entry, else the "*" default, else null (seed 001 §服务器群). */
export function stakeFor(rec: NodeRecord, kind: string): string | null {
  return rec.stakes.find((s) => s.kind === kind)?.address ?? rec.stakes.find((s) => s.kind === "*")?.address ?? null;
}

export function isSameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i]! ^ b[i]!;
  return diff === 0;
}
