// XEdDSA over Curve25519 (Signal's XEdDSA specification, revision 1, 2016-10-20): signatures made
// with an X25519 private key that verify against the X25519 public key (a Montgomery u-coordinate).
//
// A node's identity is its X25519 key. Signing with that key itself, instead of a second key derived
// from it and published next to it, means any receiver can check offline that a signature came from
// the owner of the identity: there is no second key a relay could swap in.
//
// calculate_key_pair(k): E = kB; A = E with its sign bit cleared; a = k, or −k when E's sign bit is 1
//   (so that aB = A).
// xeddsa_sign(k, M, Z): r = hash1(a ‖ M ‖ Z) mod q; R = rB; h = hash(R ‖ A ‖ M) mod q; s = r + ha mod q.
// xeddsa_verify(u, M, R ‖ s): refuse u ≥ p and s ≥ q (the specification refuses s ≥ 2^253; signers
//   reduce s mod q, so the stricter bound only refuses malleated copies); A = the Edwards point with
//   y = (u − 1)/(u + 1) and sign 0 (refused when not on the curve or of small order); accept iff
//   R == sB − hA, byte for byte.
// hash is SHA-512; hash1(X) = SHA-512(2^256 − 2 ‖ X), the 32-byte little-endian prefix FE FF … FF.
// A valid XEdDSA signature is a valid RFC 8032 Ed25519 signature under A (the tests check that).
import { ed25519 } from "@noble/curves/ed25519.js";
import { sha512 } from "@noble/hashes/sha2.js";
import { randomBytes } from "@noble/hashes/utils.js";

const Point = ed25519.Point;
const P = Point.CURVE().p;
const Q = Point.CURVE().n;

/** Key, field element and scalar encodings: 32 bytes little-endian. */
const ELEMENT_BYTES = 32;
export const XEDDSA_SIGNATURE_BYTES = 64;
/** Z: 64 bytes of fresh randomness per signature (the specification's recommendation). */
const Z_BYTES = 64;
/** hash1's prefix: 2^256 − 2 as 32 little-endian bytes. */
const HASH1_PREFIX = (() => {
  const b = new Uint8Array(ELEMENT_BYTES).fill(0xff);
  b[0] = 0xfe;
  return b;
})();

function toNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

function toBytesLE(n: bigint): Uint8Array {
  const out = new Uint8Array(ELEMENT_BYTES);
  for (let i = 0; i < ELEMENT_BYTES; i++) {
    out[i] = Number(n & 0xffn);
    n >>= 8n;
  }
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const mod = (n: bigint, m: bigint) => ((n % m) + m) % m;
const hashToScalar = (...parts: Uint8Array[]) => mod(toNumberLE(sha512(concat(...parts))), Q);

/** The X25519 scalar of a private key: RFC 7748 clamping. */
function clampScalar(privateKey: Uint8Array): bigint {
  if (privateKey.length !== ELEMENT_BYTES) throw new TypeError(`X25519 private key must be ${ELEMENT_BYTES} bytes, got ${privateKey.length}`);
  const k = Uint8Array.from(privateKey);
  k[0]! &= 248;
  k[31]! &= 127;
  k[31]! |= 64;
  return toNumberLE(k);
}

/** calculate_key_pair: the Edwards public key A (sign bit 0) and the scalar a with aB = A. */
export function xeddsaKeyPair(x25519Private: Uint8Array): { publicKey: Uint8Array; scalar: bigint } {
  const k = mod(clampScalar(x25519Private), Q);
  const E = Point.BASE.multiply(k).toBytes();
  const negative = (E[31]! & 0x80) !== 0;
  const A = Uint8Array.from(E);
  A[31]! &= 0x7f;
  return { publicKey: A, scalar: negative ? mod(Q - k, Q) : k };
}

/** convert_mont: the Edwards point (sign 0) of an X25519 public key, as 32 bytes; null when the
 *  u-coordinate is not canonical or gives no usable point. */
export function montgomeryToEdwards(u: Uint8Array): Uint8Array | null {
  if (u.length !== ELEMENT_BYTES) return null;
  const un = toNumberLE(u);
  if (un >= P) return null;
  const denominator = mod(un + 1n, P);
  if (denominator === 0n) return null;
  const y = mod((un - 1n) * Point.Fp.inv(denominator), P);
  const A = toBytesLE(y);
  try {
    const point = Point.fromBytes(A, false);
    if (point.isSmallOrder()) return null;
  } catch {
    return null;
  }
  return A;
}

/** xeddsa_sign. `random` supplies Z (64 bytes; tests pass fixed bytes). */
export function xeddsaSign(x25519Private: Uint8Array, message: Uint8Array, random: (n: number) => Uint8Array = randomBytes): Uint8Array {
  const { publicKey: A, scalar: a } = xeddsaKeyPair(x25519Private);
  const Z = random(Z_BYTES);
  if (Z.length !== Z_BYTES) throw new TypeError(`Z must be ${Z_BYTES} bytes, got ${Z.length}`);
  const r = hashToScalar(HASH1_PREFIX, toBytesLE(a), message, Z);
  // r = 0 has probability 2^-252; multiply() refuses it, and a zero nonce would be a broken signature.
  if (r === 0n) throw new Error("XEdDSA nonce is zero");
  const R = Point.BASE.multiply(r).toBytes();
  const h = hashToScalar(R, A, message);
  const s = mod(r + h * a, Q);
  return concat(R, toBytesLE(s));
}

/** xeddsa_verify against an X25519 public key (u-coordinate). Never throws. */
export function xeddsaVerify(x25519Public: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  try {
    if (signature.length !== XEDDSA_SIGNATURE_BYTES) return false;
    const A = montgomeryToEdwards(x25519Public);
    if (!A) return false;
    const Rbytes = signature.subarray(0, ELEMENT_BYTES);
    const s = toNumberLE(signature.subarray(ELEMENT_BYTES));
    if (s >= Q) return false;
    const h = hashToScalar(Rbytes, A, message);
    const Rcheck = Point.BASE.multiplyUnsafe(s).subtract(Point.fromBytes(A, false).multiplyUnsafe(h)).toBytes();
    let diff = 0;
    for (let i = 0; i < ELEMENT_BYTES; i++) diff |= Rcheck[i]! ^ Rbytes[i]!;
    return diff === 0;
  } catch {
    return false;
  }
}
