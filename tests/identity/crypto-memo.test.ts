// The opt-in memo of key operations (src/identity/crypto-memo.ts): off, every call computes; on, the
// same input bytes give the remembered output, and any changed byte computes again.
import { afterEach, expect, test } from "bun:test";
import { disableCryptoMemo, enableCryptoMemo, memo, memoKey } from "../../src/identity/crypto-memo.ts";
import { generateNodeKey, open, seal } from "../../src/identity/index.ts";

afterEach(() => disableCryptoMemo());

test("off by default: every call computes", () => {
  let n = 0;
  for (let i = 0; i < 3; i++) memo("t", () => "k", () => ++n);
  expect(n).toBe(3);
});

test("on: one computation per input, another for a changed byte; a full young half turns old, the old half is dropped", () => {
  enableCryptoMemo(4);
  let n = 0;
  const f = (...b: number[]) => memo("t", () => memoKey(Uint8Array.from(b)), () => ++n);
  expect(f(1, 2)).toBe(1);
  expect(f(1, 2)).toBe(1);
  expect(f(1, 3)).toBe(2);
  // Two of 4 in the young half: [1, 4] starts a new one, [1, 2] and [1, 3] are still found in the old.
  expect(f(1, 4)).toBe(3);
  expect(f(1, 2)).toBe(1);
  // [1, 2] moved up to the young half; [1, 3] went with the old half when [1, 5] came.
  expect(f(1, 5)).toBe(4);
  expect(f(1, 2)).toBe(1);
  expect(f(1, 3)).toBe(5);
});

test("keys tell parts apart: no two different part lists give one key", () => {
  const bytes = (...b: number[]) => new Uint8Array(b);
  const keys = [
    memoKey(bytes(1, 124), bytes(2)),
    memoKey(bytes(1), bytes(124, 2)),
    memoKey(bytes(1, 124, 2)),
    memoKey("a|", "b"),
    memoKey("a", "|b"),
    memoKey(bytes(97), "b"),
    memoKey("a", "b"),
    memoKey(new Uint8Array(5000).fill(255)),
    memoKey(new Uint8Array(5000).fill(255).fill(0, 4999)),
  ];
  expect(new Set(keys).size).toBe(keys.length);
  // Each byte value is its own character.
  const all = Array.from({ length: 256 }, (_, i) => i);
  expect(memoKey(Uint8Array.from(all))).toBe(`256b${String.fromCharCode(...all)}`);
});

test("sealed boxes open the same with the memo on, both ways, and not with a third key", () => {
  enableCryptoMemo();
  const [a, b, c] = [generateNodeKey(), generateNodeKey(), generateNodeKey()];
  const box = seal(a.privateKey, b.publicKey, "p", new Uint8Array([7]));
  expect(open(b.privateKey, a.publicKey, "p", box)).toEqual(new Uint8Array([7]));
  expect(() => open(c.privateKey, a.publicKey, "p", box)).toThrow();
  expect(() => open(b.privateKey, a.publicKey, "q", box)).toThrow();
});
