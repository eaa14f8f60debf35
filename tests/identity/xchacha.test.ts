// XChaCha20-Poly1305 of sealed boxes (src/identity/xchacha.ts): the same bytes as @noble/ciphers'
// xchacha20poly1305 for every length around the block edges, each opens the other's boxes, and a changed
// byte, a wrong key or nonce, or a short box does not open.
import { describe, expect, test } from "bun:test";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { xchachaOpen, xchachaSeal } from "../../src/identity/xchacha.ts";

describe("XChaCha20-Poly1305", () => {
  test("same bytes as @noble/ciphers, both ways, lengths 0..200 and a few large ones", () => {
    const lengths = [...Array.from({ length: 201 }, (_, i) => i), 511, 512, 513, 4096, 65_536];
    for (const n of lengths) {
      const key = randomBytes(32);
      const nonce = randomBytes(24);
      const msg = randomBytes(n);
      const theirs = xchacha20poly1305(key, nonce).encrypt(msg);
      expect(xchachaSeal(key, nonce, msg)).toEqual(theirs);
      expect(xchachaOpen(key, nonce, theirs)).toEqual(msg);
      expect(xchacha20poly1305(key, nonce).decrypt(xchachaSeal(key, nonce, msg))).toEqual(msg);
    }
  });

  test("a changed byte, another key or nonce, or a box shorter than a tag does not open", () => {
    const key = randomBytes(32);
    const nonce = randomBytes(24);
    const box = xchachaSeal(key, nonce, randomBytes(40));
    for (let i = 0; i < box.length; i++) {
      const bad = box.slice();
      bad[i]! ^= 0x01;
      expect(xchachaOpen(key, nonce, bad)).toBeNull();
    }
    expect(xchachaOpen(randomBytes(32), nonce, box)).toBeNull();
    expect(xchachaOpen(key, randomBytes(24), box)).toBeNull();
    expect(xchachaOpen(key, nonce, box.subarray(0, 15))).toBeNull();
    expect(xchachaOpen(key, nonce, xchachaSeal(key, nonce, new Uint8Array(0)))).toEqual(new Uint8Array(0));
  });

  test("keys and nonces of the wrong length are refused", () => {
    expect(() => xchachaSeal(new Uint8Array(31), new Uint8Array(24), new Uint8Array(1))).toThrow(RangeError);
    expect(() => xchachaSeal(new Uint8Array(32), new Uint8Array(12), new Uint8Array(1))).toThrow(RangeError);
  });
});
