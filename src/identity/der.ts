// The little DER (ITU-T X.690) the run certificate needs: building one self-signed X.509 v3 certificate
// (RFC 5280 §4.1) and finding the SubjectPublicKeyInfo inside any certificate, without an ASN.1 library.

/** DER tags used here (X.690 §8, RFC 5280 §4.1). */
const TAG = {
  boolean: 0x01,
  integer: 0x02,
  bitString: 0x03,
  octetString: 0x04,
  oid: 0x06,
  utf8String: 0x0c,
  sequence: 0x30,
  set: 0x31,
  utcTime: 0x17,
  generalizedTime: 0x18,
  /** [0] EXPLICIT (version), [3] EXPLICIT (extensions). */
  context0: 0xa0,
  context3: 0xa3,
} as const;

/** Encoded OBJECT IDENTIFIER contents. */
export const OID = {
  /** ecdsa-with-SHA256, RFC 5758 §3.2: 1.2.840.10045.4.3.2 */
  ecdsaWithSha256: Uint8Array.of(0x2a, 0x86, 0x48, 0xce, 0x3d, 0x04, 0x03, 0x02),
  /** id-at-commonName, RFC 5280 App. A: 2.5.4.3 */
  commonName: Uint8Array.of(0x55, 0x04, 0x03),
  /** id-ce-basicConstraints, RFC 5280 §4.2.1.9: 2.5.29.19 */
  basicConstraints: Uint8Array.of(0x55, 0x1d, 0x13),
} as const;

function concat(parts: readonly Uint8Array[]): Uint8Array<ArrayBuffer> {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** One tag-length-value (definite length, X.690 §8.1.3). */
export function tlv(tag: number, ...content: Uint8Array[]): Uint8Array<ArrayBuffer> {
  const body = concat(content);
  const n = body.length;
  const len = n < 0x80 ? [n] : n < 0x100 ? [0x81, n] : n < 0x10000 ? [0x82, n >> 8, n & 0xff] : [0x83, n >> 16, (n >> 8) & 0xff, n & 0xff];
  return concat([Uint8Array.of(tag, ...len), body]);
}

export const seq = (...parts: Uint8Array[]) => tlv(TAG.sequence, ...parts);

/** A non-negative INTEGER from big-endian bytes: minimal, with a 0x00 when the top bit is set. */
export function unsignedInt(bytes: Uint8Array): Uint8Array {
  let i = 0;
  while (i < bytes.length - 1 && bytes[i] === 0) i++;
  const v = bytes.subarray(i);
  return tlv(TAG.integer, v[0]! & 0x80 ? Uint8Array.of(0, ...v) : v);
}

/** UTCTime through 2049, GeneralizedTime after (RFC 5280 §4.1.2.5), to the second, in UTC. */
export function time(d: Date): Uint8Array {
  const p = (n: number) => String(n).padStart(2, "0");
  const y = d.getUTCFullYear();
  const rest = `${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}Z`;
  const enc = new TextEncoder();
  return y < 2050 ? tlv(TAG.utcTime, enc.encode(`${p(y % 100)}${rest}`)) : tlv(TAG.generalizedTime, enc.encode(`${y}${rest}`));
}

/** Name with one RDN: CN=`cn`. */
export function commonNameOf(cn: string): Uint8Array {
  return seq(tlv(TAG.set, seq(tlv(TAG.oid, OID.commonName), tlv(TAG.utf8String, new TextEncoder().encode(cn)))));
}

/** The TBSCertificate of a self-signed ECDSA P-256 certificate with a critical basicConstraints cA=false. */
export function tbsCertificate(init: { serial: Uint8Array; name: string; notBefore: Date; notAfter: Date; spkiDer: Uint8Array }): Uint8Array<ArrayBuffer> {
  const name = commonNameOf(init.name);
  const sigAlg = seq(tlv(TAG.oid, OID.ecdsaWithSha256));
  // BasicConstraints ::= SEQUENCE { cA BOOLEAN DEFAULT FALSE, … }: cA=false is the empty SEQUENCE in DER.
  const basic = seq(tlv(TAG.oid, OID.basicConstraints), tlv(TAG.boolean, Uint8Array.of(0xff)), tlv(TAG.octetString, seq()));
  return seq(
    tlv(TAG.context0, tlv(TAG.integer, Uint8Array.of(2))),
    unsignedInt(init.serial),
    sigAlg,
    name,
    seq(time(init.notBefore), time(init.notAfter)),
    name,
    init.spkiDer,
    tlv(TAG.context3, seq(basic)),
  );
}

/** The Certificate: TBS, algorithm, and the signature as an ECDSA-Sig-Value (RFC 5480 §2.2.3) made from
 *  WebCrypto's r‖s (IEEE P1363) form. */
export function certificate(tbs: Uint8Array, p1363Signature: Uint8Array): Uint8Array {
  const half = p1363Signature.length / 2;
  const sig = seq(unsignedInt(p1363Signature.subarray(0, half)), unsignedInt(p1363Signature.subarray(half)));
  return seq(tbs, seq(tlv(TAG.oid, OID.ecdsaWithSha256)), tlv(TAG.bitString, Uint8Array.of(0), sig));
}

/** One TLV read from `buf` at `at`: its tag, where its content starts and where it ends. */
function readTlv(buf: Uint8Array, at: number, end: number): { tag: number; start: number; end: number } {
  if (at + 2 > end) throw new Error("DER: truncated");
  const tag = buf[at]!;
  let n = buf[at + 1]!;
  let start = at + 2;
  if (n & 0x80) {
    const bytes = n & 0x7f;
    if (bytes === 0 || bytes > 3 || start + bytes > end) throw new Error("DER: bad length");
    n = 0;
    for (let i = 0; i < bytes; i++) n = n * 256 + buf[start + i]!;
    start += bytes;
  }
  if (start + n > end) throw new Error("DER: truncated");
  return { tag, start, end: start + n };
}

/** The SubjectPublicKeyInfo TLV (tag and all) of a DER certificate; throws on anything that is not one. */
export function spkiBytesOf(der: Uint8Array): Uint8Array {
  const cert = readTlv(der, 0, der.length);
  if (cert.tag !== TAG.sequence || cert.end !== der.length) throw new Error("DER: not a certificate");
  const tbs = readTlv(der, cert.start, cert.end);
  if (tbs.tag !== TAG.sequence) throw new Error("DER: not a certificate");
  let at = tbs.start;
  let field = readTlv(der, at, tbs.end);
  if (field.tag === TAG.context0) field = readTlv(der, (at = field.end), tbs.end);
  // serialNumber, signature, issuer, validity, subject; then subjectPublicKeyInfo.
  for (const tag of [TAG.integer, TAG.sequence, TAG.sequence, TAG.sequence, TAG.sequence]) {
    if (field.tag !== tag) throw new Error("DER: unexpected field in the certificate");
    field = readTlv(der, (at = field.end), tbs.end);
  }
  if (field.tag !== TAG.sequence) throw new Error("DER: no public key in the certificate");
  return der.subarray(at, field.end);
}
