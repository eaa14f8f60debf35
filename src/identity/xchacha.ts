// XChaCha20-Poly1305 (draft-irtf-cfrg-xchacha §2: HChaCha20 subkey, then the RFC 8439 AEAD) for the short
// boxes of seal.ts, without associated data. The same bytes as @noble/ciphers' xchacha20poly1305 (the tests
// compare them); the ChaCha20 block reads and writes bytes by index, where @noble builds typed-array views
// of every key, nonce and block, which costs more than the cipher itself for a 32-byte box. Poly1305 is
// @noble's.
import { Poly1305 } from "@noble/ciphers/_poly1305.js";

/** XChaCha20 key, nonce and Poly1305 tag lengths, in bytes. */
export const XCHACHA_KEY_BYTES = 32;
export const XCHACHA_NONCE_BYTES = 24;
export const POLY1305_TAG_BYTES = 16;

/** "expand 32-byte k" (RFC 8439 §2.3). */
const SIGMA = [0x61707865, 0x3320646e, 0x79622d32, 0x6b206574] as const;
const BLOCK_BYTES = 64;

/** ciphertext ‖ tag of `plaintext` under `key` and the 24-byte `nonce`. */
export function xchachaSeal(key: Uint8Array, nonce: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const state = initState(key, nonce);
  const out = new Uint8Array(plaintext.length + POLY1305_TAG_BYTES);
  xorStream(state, plaintext, out);
  out.set(tagOf(state, out, plaintext.length), plaintext.length);
  return out;
}

/** The plaintext of ciphertext ‖ tag, or null when the tag does not match (checked before decrypting). */
export function xchachaOpen(key: Uint8Array, nonce: Uint8Array, sealed: Uint8Array): Uint8Array | null {
  if (sealed.length < POLY1305_TAG_BYTES) return null;
  const n = sealed.length - POLY1305_TAG_BYTES;
  const state = initState(key, nonce);
  const tag = tagOf(state, sealed, n);
  let diff = 0;
  for (let i = 0; i < POLY1305_TAG_BYTES; i++) diff |= tag[i]! ^ sealed[n + i]!;
  if (diff !== 0) return null;
  const out = new Uint8Array(n);
  xorStream(state, sealed, out, n);
  return out;
}

/** The ChaCha20 state for (HChaCha20(key, nonce[0..16]), counter 0, 0⁴ ‖ nonce[16..24]). */
function initState(key: Uint8Array, nonce: Uint8Array): Int32Array {
  if (key.length !== XCHACHA_KEY_BYTES) throw new RangeError(`XChaCha20 key must be ${XCHACHA_KEY_BYTES} bytes, got ${key.length}`);
  if (nonce.length !== XCHACHA_NONCE_BYTES) throw new RangeError(`XChaCha20 nonce must be ${XCHACHA_NONCE_BYTES} bytes, got ${nonce.length}`);
  const s = new Int32Array(16);
  s.set(SIGMA, 0);
  for (let i = 0; i < 8; i++) s[4 + i] = load32(key, 4 * i);
  for (let i = 0; i < 4; i++) s[12 + i] = load32(nonce, 4 * i);
  const x = new Int32Array(16);
  rounds(s, x);
  // HChaCha20: words 0..3 and 12..15 after the rounds, without the final addition, are the subkey.
  for (let i = 0; i < 4; i++) s[4 + i] = x[i]!;
  for (let i = 0; i < 4; i++) s[8 + i] = x[12 + i]!;
  s[12] = 0;
  s[13] = 0;
  s[14] = load32(nonce, 16);
  s[15] = load32(nonce, 20);
  return s;
}

/** Poly1305 over ciphertext[0..n] ‖ pad16 ‖ le64(0) ‖ le64(n) (RFC 8439 §2.8, no associated data), keyed by
 *  the first 32 bytes of block 0. */
function tagOf(state: Int32Array, ciphertext: Uint8Array, n: number): Uint8Array {
  const block = new Int32Array(16);
  state[12] = 0;
  chachaBlock(state, block);
  const polyKey = new Uint8Array(32);
  for (let i = 0; i < 32; i++) polyKey[i] = (block[i >> 2]! >>> (8 * (i & 3))) & 0xff;
  const padded = Math.ceil(n / 16) * 16;
  const mac = new Uint8Array(padded + 16);
  for (let i = 0; i < n; i++) mac[i] = ciphertext[i]!;
  // le64(len(aad)) = 0, then le64(n): n < 2^32 here (boxes are small).
  mac[padded + 8] = n & 0xff;
  mac[padded + 9] = (n >>> 8) & 0xff;
  mac[padded + 10] = (n >>> 16) & 0xff;
  mac[padded + 11] = (n >>> 24) & 0xff;
  return new Poly1305(polyKey).update(mac).digest();
}

/** out[i] = input[i] ^ keystream from block 1 on, for i < n. */
function xorStream(state: Int32Array, input: Uint8Array, out: Uint8Array, n = input.length): void {
  const block = new Int32Array(16);
  for (let at = 0, counter = 1; at < n; at += BLOCK_BYTES, counter++) {
    state[12] = counter;
    chachaBlock(state, block);
    const end = Math.min(n, at + BLOCK_BYTES);
    for (let i = at; i < end; i++) {
      const k = i - at;
      out[i] = input[i]! ^ ((block[k >> 2]! >>> (8 * (k & 3))) & 0xff);
    }
  }
}

/** One ChaCha20 block: the rounds plus the input state (RFC 8439 §2.3). */
function chachaBlock(s: Int32Array, out: Int32Array): void {
  rounds(s, out);
  for (let i = 0; i < 16; i++) out[i] = (out[i]! + s[i]!) | 0;
}

/** 20 rounds (10 column + diagonal double rounds) of `s` into `out`, without the final addition. */
function rounds(s: Int32Array, out: Int32Array): void {
  let x0 = s[0]!, x1 = s[1]!, x2 = s[2]!, x3 = s[3]!, x4 = s[4]!, x5 = s[5]!, x6 = s[6]!, x7 = s[7]!;
  let x8 = s[8]!, x9 = s[9]!, x10 = s[10]!, x11 = s[11]!, x12 = s[12]!, x13 = s[13]!, x14 = s[14]!, x15 = s[15]!;
  for (let r = 0; r < 10; r++) {
    // Columns.
    x0 = (x0 + x4) | 0; x12 = rotl(x12 ^ x0, 16); x8 = (x8 + x12) | 0; x4 = rotl(x4 ^ x8, 12);
    x0 = (x0 + x4) | 0; x12 = rotl(x12 ^ x0, 8); x8 = (x8 + x12) | 0; x4 = rotl(x4 ^ x8, 7);
    x1 = (x1 + x5) | 0; x13 = rotl(x13 ^ x1, 16); x9 = (x9 + x13) | 0; x5 = rotl(x5 ^ x9, 12);
    x1 = (x1 + x5) | 0; x13 = rotl(x13 ^ x1, 8); x9 = (x9 + x13) | 0; x5 = rotl(x5 ^ x9, 7);
    x2 = (x2 + x6) | 0; x14 = rotl(x14 ^ x2, 16); x10 = (x10 + x14) | 0; x6 = rotl(x6 ^ x10, 12);
    x2 = (x2 + x6) | 0; x14 = rotl(x14 ^ x2, 8); x10 = (x10 + x14) | 0; x6 = rotl(x6 ^ x10, 7);
    x3 = (x3 + x7) | 0; x15 = rotl(x15 ^ x3, 16); x11 = (x11 + x15) | 0; x7 = rotl(x7 ^ x11, 12);
    x3 = (x3 + x7) | 0; x15 = rotl(x15 ^ x3, 8); x11 = (x11 + x15) | 0; x7 = rotl(x7 ^ x11, 7);
    // Diagonals.
    x0 = (x0 + x5) | 0; x15 = rotl(x15 ^ x0, 16); x10 = (x10 + x15) | 0; x5 = rotl(x5 ^ x10, 12);
    x0 = (x0 + x5) | 0; x15 = rotl(x15 ^ x0, 8); x10 = (x10 + x15) | 0; x5 = rotl(x5 ^ x10, 7);
    x1 = (x1 + x6) | 0; x12 = rotl(x12 ^ x1, 16); x11 = (x11 + x12) | 0; x6 = rotl(x6 ^ x11, 12);
    x1 = (x1 + x6) | 0; x12 = rotl(x12 ^ x1, 8); x11 = (x11 + x12) | 0; x6 = rotl(x6 ^ x11, 7);
    x2 = (x2 + x7) | 0; x13 = rotl(x13 ^ x2, 16); x8 = (x8 + x13) | 0; x7 = rotl(x7 ^ x8, 12);
    x2 = (x2 + x7) | 0; x13 = rotl(x13 ^ x2, 8); x8 = (x8 + x13) | 0; x7 = rotl(x7 ^ x8, 7);
    x3 = (x3 + x4) | 0; x14 = rotl(x14 ^ x3, 16); x9 = (x9 + x14) | 0; x4 = rotl(x4 ^ x9, 12);
    x3 = (x3 + x4) | 0; x14 = rotl(x14 ^ x3, 8); x9 = (x9 + x14) | 0; x4 = rotl(x4 ^ x9, 7);
  }
  out[0] = x0; out[1] = x1; out[2] = x2; out[3] = x3; out[4] = x4; out[5] = x5; out[6] = x6; out[7] = x7;
  out[8] = x8; out[9] = x9; out[10] = x10; out[11] = x11; out[12] = x12; out[13] = x13; out[14] = x14; out[15] = x15;
}

function rotl(v: number, n: number): number {
  return (v << n) | (v >>> (32 - n));
}

function load32(b: Uint8Array, i: number): number {
  return b[i]! | (b[i + 1]! << 8) | (b[i + 2]! << 16) | (b[i + 3]! << 24);
}
