// XEdDSA (Signal's specification): sign with an X25519 key, verify against the X25519 public key (src/identity/xeddsa.ts).
import { describe, expect, test } from "bun:test";
import { ed25519, x25519 } from "@noble/curves/ed25519.js";
import { hexToBytes } from "@noble/hashes/utils.js";
import { montgomeryToEdwards, xeddsaKeyPair, xeddsaSign, xeddsaVerify } from "../../src/identity/xeddsa.ts";
import { seeded } from "../seeded.ts";

const Q = ed25519.Point.CURVE().n;
const msg = (text: string) => new TextEncoder().encode(text);
const fixedZ = (fill: number) => () => new Uint8Array(64).fill(fill);

function toNumberLE(bytes: Uint8Array): bigint {
  let n = 0n;
  for (let i = bytes.length - 1; i >= 0; i--) n = (n << 8n) | BigInt(bytes[i]!);
  return n;
}

// libsignal's Curve25519 test identity key (libsignal-protocol-c / -java test_curve25519_signature),
// with its legacy ("curve_sigs") signature: an Ed25519 signature under the key's Edwards point whose
// sign bit travels in the top bit of the signature's last byte.
const SIGNAL_PRIVATE = hexToBytes("c097248412e58bf05df487968205132794178e367637f5818f81e0e6ce73e865");
const SIGNAL_PUBLIC = hexToBytes("ab7e717d4a163b7d9a1d8071dfe9dcf8cdcd1cea3339b6356be84d887e322c64");
const SIGNAL_MESSAGE = hexToBytes("05edce9d9c415ca78cb7252e72c2c4a554d3eb29485a0e1d503118d1a82d99fb4a");
const SIGNAL_LEGACY_SIGNATURE = hexToBytes(
  "5de88ca9a89b4a115da79109c67c9c7464a3e4180274f1cb8c63c2984e286dfbede82deb9dcd9fae0bfbb821569b3d9001bd8130cd11d486cef047bd60b86e88",
);

describe("XEdDSA keys", () => {
  test("the Edwards point of the X25519 private scalar maps to the X25519 public key", () => {
    const rand = seeded(7);
    for (let i = 0; i < 32; i++) {
      const k = Uint8Array.from({ length: 32 }, () => Math.floor(rand() * 256));
      const u = x25519.getPublicKey(k);
      const { publicKey: A, scalar: a } = xeddsaKeyPair(k);
      // Edwards → Montgomery (noble's birational map) gives back the X25519 public key …
      expect(ed25519.utils.toMontgomery(A)).toEqual(u);
      // … and Montgomery → Edwards (ours, sign 0) gives back A, which aB equals.
      expect(montgomeryToEdwards(u)).toEqual(A);
      expect(ed25519.Point.BASE.multiply(a).toBytes()).toEqual(A);
      expect(A[31]! & 0x80).toBe(0);
    }
  });

  test("libsignal's test identity key: same public key, and its Edwards point verifies libsignal's signature", () => {
    expect(x25519.getPublicKey(SIGNAL_PRIVATE)).toEqual(SIGNAL_PUBLIC);
    const A = montgomeryToEdwards(SIGNAL_PUBLIC)!;
    expect(xeddsaKeyPair(SIGNAL_PRIVATE).publicKey).toEqual(A);
    const sig = Uint8Array.from(SIGNAL_LEGACY_SIGNATURE);
    const signBit = sig[63]! & 0x80;
    sig[63]! &= 0x7f;
    const E = Uint8Array.from(A);
    E[31]! |= signBit;
    expect(ed25519.verify(sig, SIGNAL_MESSAGE, E, { zip215: false })).toBe(true);
    // And an XEdDSA signature by the same key verifies against the bare X25519 public key.
    expect(xeddsaVerify(SIGNAL_PUBLIC, SIGNAL_MESSAGE, xeddsaSign(SIGNAL_PRIVATE, SIGNAL_MESSAGE))).toBe(true);
  });

  test("u-coordinates that are not canonical or give no usable point are refused", () => {
    const p = (1n << 255n) - 19n;
    const le = (n: bigint) => Uint8Array.from({ length: 32 }, (_, i) => Number((n >> BigInt(8 * i)) & 0xffn));
    expect(montgomeryToEdwards(le(p))).toBeNull();
    expect(montgomeryToEdwards(le(p - 1n))).toBeNull(); // u = −1: no y
    expect(montgomeryToEdwards(new Uint8Array(32))).toBeNull(); // u = 0: small order
    expect(montgomeryToEdwards(le(1n))).toBeNull(); // u = 1: the identity
    expect(montgomeryToEdwards(new Uint8Array(31))).toBeNull();
  });
});

describe("XEdDSA signatures", () => {
  const k = x25519.utils.randomSecretKey();
  const u = x25519.getPublicKey(k);
  const m = msg("a node record");

  test("a signature verifies against the X25519 public key, and is an RFC 8032 Ed25519 signature under A", () => {
    for (let i = 0; i < 16; i++) {
      const text = msg(`message ${i}`);
      const sig = xeddsaSign(k, text);
      expect(sig.length).toBe(64);
      expect(xeddsaVerify(u, text, sig)).toBe(true);
      expect(ed25519.verify(sig, text, montgomeryToEdwards(u)!, { zip215: false })).toBe(true);
    }
  });

  test("Z makes signatures randomized; the same Z gives the same signature", () => {
    expect(xeddsaSign(k, m, fixedZ(1))).toEqual(xeddsaSign(k, m, fixedZ(1)));
    expect(xeddsaSign(k, m, fixedZ(1))).not.toEqual(xeddsaSign(k, m, fixedZ(2)));
    expect(xeddsaVerify(u, m, xeddsaSign(k, m, fixedZ(2)))).toBe(true);
  });

  test("any change to the message, R, s or the key fails", () => {
    const sig = xeddsaSign(k, m);
    const other = x25519.getPublicKey(x25519.utils.randomSecretKey());
    expect(xeddsaVerify(other, m, sig)).toBe(false);
    expect(xeddsaVerify(u, msg("a node recorD"), sig)).toBe(false);
    for (const at of [0, 17, 31, 32, 50, 63]) {
      const bad = Uint8Array.from(sig);
      bad[at]! ^= 0x04;
      expect(xeddsaVerify(u, m, bad)).toBe(false);
    }
  });

  test("s must be reduced: s + q (the same point equation) is refused", () => {
    const sig = xeddsaSign(k, m);
    const s = toNumberLE(sig.subarray(32)) + Q;
    const bumped = Uint8Array.from(sig);
    for (let i = 0; i < 32; i++) bumped[32 + i] = Number((s >> BigInt(8 * i)) & 0xffn);
    expect(xeddsaVerify(u, m, bumped)).toBe(false);
  });

  test("keys whose Edwards point has sign bit 1 sign with a = −k and still verify", () => {
    const rand = seeded(3);
    let negated = 0;
    for (let i = 0; i < 16; i++) {
      const k2 = Uint8Array.from({ length: 32 }, () => Math.floor(rand() * 256));
      const clamped = Uint8Array.from(k2);
      clamped[0]! &= 248;
      clamped[31]! &= 127;
      clamped[31]! |= 64;
      const kq = toNumberLE(clamped) % Q;
      const { scalar } = xeddsaKeyPair(k2);
      if (scalar !== kq) {
        expect(scalar).toBe(Q - kq);
        negated++;
      }
      expect(xeddsaVerify(x25519.getPublicKey(k2), m, xeddsaSign(k2, m))).toBe(true);
    }
    expect(negated).toBeGreaterThan(0);
  });

  test("garbage never throws and never verifies", () => {
    const rand = seeded(11);
    const bytes = (n: number) => Uint8Array.from({ length: n }, () => Math.floor(rand() * 256));
    for (let i = 0; i < 200; i++) {
      expect(xeddsaVerify(bytes(32), bytes(10), bytes(64))).toBe(false);
      expect(xeddsaVerify(u, m, bytes(i % 70))).toBe(false);
    }
    expect(xeddsaVerify(new Uint8Array(32), m, new Uint8Array(64))).toBe(false);
  });

  test("a private key of the wrong length or a short Z is an error, not a bad signature", () => {
    expect(() => xeddsaSign(new Uint8Array(31), m)).toThrow(TypeError);
    expect(() => xeddsaSign(k, m, () => new Uint8Array(63))).toThrow(TypeError);
  });
});
