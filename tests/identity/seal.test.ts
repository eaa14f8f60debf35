import { describe, expect, test } from "bun:test";
import { generateNodeKey, nodeKeyFromPrivate } from "../../src/identity/node-key.ts";
import { ephemeralKeyPair, open, seal } from "../../src/identity/seal.ts";
import { SealError } from "../../src/errors.ts";
import { SEAL_PURPOSE } from "../../src/constants.ts";

const text = (s: string) => new TextEncoder().encode(s);

describe("sealed boxes", () => {
  const a = generateNodeKey();
  const b = generateNodeKey();
  const msg = text("certificate and port");

  test("round trip between two keys in both directions", () => {
    const box = seal(a.privateKey, b.publicKey, SEAL_PURPOSE.meshBootstrap, msg);
    expect(open(b.privateKey, a.publicKey, SEAL_PURPOSE.meshBootstrap, box)).toEqual(msg);
    const back = seal(b.privateKey, a.publicKey, SEAL_PURPOSE.meshBootstrap, msg);
    expect(open(a.privateKey, b.publicKey, SEAL_PURPOSE.meshBootstrap, back)).toEqual(msg);
  });

  test("an ephemeral key pair is a real X25519 pair: boxes to and from it open, and each call gives another", () => {
    const e = ephemeralKeyPair();
    expect(e.publicKey).toEqual(nodeKeyFromPrivate(e.privateKey).publicKey);
    expect(open(a.privateKey, e.publicKey, SEAL_PURPOSE.keyAnswer, seal(e.privateKey, a.publicKey, SEAL_PURPOSE.keyAnswer, msg))).toEqual(msg);
    expect(open(e.privateKey, a.publicKey, SEAL_PURPOSE.keyAnswer, seal(a.privateKey, e.publicKey, SEAL_PURPOSE.keyAnswer, msg))).toEqual(msg);
    expect(ephemeralKeyPair().privateKey).not.toEqual(e.privateKey);
  });

  test("uses a fresh nonce each time", () => {
    const x = seal(a.privateKey, b.publicKey, SEAL_PURPOSE.appHello, msg);
    const y = seal(a.privateKey, b.publicKey, SEAL_PURPOSE.appHello, msg);
    expect(Buffer.from(x).equals(Buffer.from(y))).toBe(false);
  });

  test("flipping any single byte is rejected", () => {
    const box = seal(a.privateKey, b.publicKey, SEAL_PURPOSE.appCert, msg);
    for (let i = 0; i < box.length; i++) {
      const bad = box.slice();
      bad[i]! ^= 0x01;
      expect(() => open(b.privateKey, a.publicKey, SEAL_PURPOSE.appCert, bad)).toThrow(SealError);
    }
  });

  test("a box for one purpose does not open for another", () => {
    const box = seal(a.privateKey, b.publicKey, SEAL_PURPOSE.appHello, msg);
    expect(() => open(b.privateKey, a.publicKey, SEAL_PURPOSE.appCert, box)).toThrow(/authentication failed/);
  });

  test("a third key cannot open the box", () => {
    const c = generateNodeKey();
    const box = seal(a.privateKey, b.publicKey, SEAL_PURPOSE.appHello, msg);
    expect(() => open(c.privateKey, a.publicKey, SEAL_PURPOSE.appHello, box)).toThrow(SealError);
  });

  test("short, oversized and garbage boxes are typed errors", () => {
    expect(() => open(b.privateKey, a.publicKey, "x", new Uint8Array(10))).toThrow(/too short/);
    expect(() => open(b.privateKey, a.publicKey, "x", new Uint8Array(9000))).toThrow(/over the limit/);
    for (let i = 0; i < 200; i++) {
      const junk = crypto.getRandomValues(new Uint8Array(40 + (i % 100)));
      expect(() => open(b.privateKey, a.publicKey, "x", junk)).toThrow(SealError);
    }
  });

  test("a peer key of the wrong length is rejected", () => {
    expect(() => seal(a.privateKey, new Uint8Array(31), "x", msg)).toThrow(/32 bytes/);
  });
});

describe("X25519 by native crypto", () => {
  test("derives the same sealed-box key as @noble/curves, and refuses low-order points", async () => {
    const { x25519 } = await import("@noble/curves/ed25519.js");
    const { sealKey } = await import("../../src/identity/seal.ts");
    const { hkdf } = await import("@noble/hashes/hkdf.js");
    const { sha256 } = await import("@noble/hashes/sha2.js");
    for (let i = 0; i < 5; i++) {
      const a = x25519.utils.randomSecretKey();
      const b = x25519.utils.randomSecretKey();
      const [pa, pb] = [x25519.getPublicKey(a), x25519.getPublicKey(b)];
      const [lo, hi] = Buffer.compare(Buffer.from(pa), Buffer.from(pb)) <= 0 ? [pa, pb] : [pb, pa];
      const info = new Uint8Array([...new TextEncoder().encode("p"), ...lo, ...hi]);
      expect(sealKey(a, pb, "p")).toEqual(hkdf(sha256, x25519.getSharedSecret(a, pb), undefined, info, 32));
      expect(sealKey(b, pa, "p")).toEqual(sealKey(a, pb, "p"));
    }
    const me = x25519.utils.randomSecretKey();
    // Low-order points of Curve25519 (RFC 7748 §6.1 asks to check for the all-zero result).
    const lowOrder = [new Uint8Array(32), Uint8Array.from([1, ...new Uint8Array(31)]), Buffer.from("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800", "hex")];
    for (const p of lowOrder) expect(() => sealKey(me, p, "p")).toThrow();
  });

  test("a private key array changed in place derives with its new bytes", async () => {
    const { sealKey } = await import("../../src/identity/seal.ts");
    const [x, y, z] = [generateNodeKey(), generateNodeKey(), generateNodeKey()];
    const mine = x.privateKey.slice();
    expect(sealKey(mine, z.publicKey, "p")).toEqual(sealKey(x.privateKey, z.publicKey, "p"));
    mine.set(y.privateKey);
    expect(sealKey(mine, z.publicKey, "p")).toEqual(sealKey(y.privateKey, z.publicKey, "p"));
  });
});
