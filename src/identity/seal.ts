// Sealed boxes between two X25519 keys: X25519 → HKDF-SHA256 → XChaCha20-Poly1305 (DESIGN §3).
import { x25519 } from "@noble/curves/ed25519.js";
import { xchacha20poly1305 } from "@noble/ciphers/chacha.js";
import { randomBytes } from "@noble/hashes/utils.js";
import { createPrivateKey, createPublicKey, diffieHellman, generateKeyPairSync, hkdfSync, type KeyObject } from "node:crypto";
import { MAX_SEALED_BYTES, X25519_KEY_BYTES } from "../constants.ts";
import { SealError } from "../errors.ts";
import { memo, memoKey } from "./crypto-memo.ts";

/** XChaCha20-Poly1305 nonce length (draft-irtf-cfrg-xchacha §2). */
const XCHACHA_NONCE_BYTES = 24;
/** Poly1305 tag length (RFC 8439 §2.5). */
const POLY1305_TAG_BYTES = 16;

const encoder = new TextEncoder();

/** The symmetric key for (mine, theirs, purpose). Both public keys go into HKDF's info in a fixed
 *  order (sorted), so both ends derive the same key and a key made for one pair or one purpose is
 *  useless for another. */
export function sealKey(myPrivate: Uint8Array, theirPublic: Uint8Array, purpose: string): Uint8Array {
  return memo("sealKey", () => memoKey(myPrivate, theirPublic, purpose), () => deriveSealKey(myPrivate, theirPublic, purpose));
}

function deriveSealKey(myPrivate: Uint8Array, theirPublic: Uint8Array, purpose: string): Uint8Array {
  if (theirPublic.length !== X25519_KEY_BYTES) throw new SealError(`Cannot seal: peer key must be ${X25519_KEY_BYTES} bytes, got ${theirPublic.length}`);
  const myPublic = publicOf(myPrivate);
  const [a, b] = compareBytes(myPublic, theirPublic) <= 0 ? [myPublic, theirPublic] : [theirPublic, myPublic];
  // X25519(mine, theirs) = X25519(theirs, mine): with the memo on, both ends of a pair compute it once.
  const shared = memo("x25519Shared", () => memoKey(a, b), () => {
    try {
      return sharedSecret(myPrivate, theirPublic);
    } catch (err) {
      throw new SealError("Cannot seal: peer key is not a valid X25519 point", { cause: err });
    }
  });
  const label = encoder.encode(purpose);
  const info = new Uint8Array(label.length + a.length + b.length);
  info.set(label, 0);
  info.set(a, label.length);
  info.set(b, label.length + a.length);
  // HKDF-SHA256 (RFC 5869) with no salt, by the runtime's native crypto: the same bytes as @noble/hashes'
  // hkdf(sha256, shared, undefined, info, 32) (an absent salt is HashLen zero bytes, the same HMAC key as
  // an empty one) at a tenth of the cost.
  return new Uint8Array(hkdfSync("sha256", shared, NO_SALT, info, SEAL_KEY_BYTES));
}

/** Length of a derived seal key: an XChaCha20 key. */
const SEAL_KEY_BYTES = 32;
const NO_SALT = new Uint8Array(0);

/** DER headers of raw X25519 keys (RFC 8410): PKCS#8 for a private key, SPKI for a public key. */
const PKCS8_X25519 = Uint8Array.from([0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x04, 0x22, 0x04, 0x20]);
const SPKI_X25519 = Uint8Array.from([0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x6e, 0x03, 0x21, 0x00]);

/** X25519 (RFC 7748) by the runtime's native crypto (BoringSSL in Bun): the same bytes as
 *  @noble/curves' x25519.getSharedSecret about ten times faster, which matters to a node that key-checks
 *  every shared record. Both refuse a low-order peer key (an all-zero result) by throwing. */
function sharedSecret(myPrivate: Uint8Array, theirPublic: Uint8Array): Uint8Array {
  const privateKey = privateKeyObject(myPrivate);
  const publicKey = createPublicKey({ key: der(SPKI_X25519, theirPublic), format: "der", type: "spki" });
  const out = new Uint8Array(diffieHellman({ privateKey, publicKey }));
  if (out.every((b) => b === 0)) throw new SealError("X25519 gave the all-zero secret");
  return out;
}

function der(head: Uint8Array, key: Uint8Array): Buffer {
  return Buffer.concat([head, key]);
}

/** Native key objects of the private keys in use, by key object (parsing the DER costs as much as half
 *  the key agreement), checked against a copy of the bytes like publicOf's entries. */
const privateKeyObjects = new WeakMap<Uint8Array, { copy: Uint8Array; key: KeyObject }>();

function privateKeyObject(myPrivate: Uint8Array): KeyObject {
  const hit = privateKeyObjects.get(myPrivate);
  if (hit && isSame(hit.copy, myPrivate)) return hit.key;
  const key = createPrivateKey({ key: der(PKCS8_X25519, myPrivate), format: "der", type: "pkcs8" });
  privateKeyObjects.set(myPrivate, { copy: myPrivate.slice(), key });
  return key;
}

function isSame(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** Public keys of the private keys in use, by key object: a node seals and opens with one key all its
 *  life, and deriving the public key is a scalar multiplication each time. */
const publicKeys = new WeakMap<Uint8Array, { copy: Uint8Array; pub: Uint8Array }>();

function publicOf(myPrivate: Uint8Array): Uint8Array {
  const hit = publicKeys.get(myPrivate);
  // The bytes of a cached key object could have been changed in place: compare before trusting the entry.
  if (hit && isSame(hit.copy, myPrivate)) return hit.pub;
  const pub = x25519.getPublicKey(myPrivate);
  publicKeys.set(myPrivate, { copy: myPrivate.slice(), pub });
  return pub;
}

/** A fresh X25519 key pair for one exchange, by the runtime's native generator (a fortieth of the cost
 *  of @noble/curves' getPublicKey); seal/open reuse its key object and public key. Memory only. */
export function ephemeralKeyPair(): { privateKey: Uint8Array; publicKey: Uint8Array } {
  const pair = generateKeyPairSync("x25519");
  const jwk = pair.privateKey.export({ format: "jwk" });
  const privateKey = new Uint8Array(Buffer.from(jwk.d!, "base64url"));
  const publicKey = new Uint8Array(Buffer.from(jwk.x!, "base64url"));
  privateKeyObjects.set(privateKey, { copy: privateKey.slice(), key: pair.privateKey });
  publicKeys.set(privateKey, { copy: privateKey.slice(), pub: publicKey });
  return { privateKey, publicKey };
}

/** Seals plaintext: returns nonce ‖ ciphertext ‖ tag. */
export function seal(myPrivate: Uint8Array, theirPublic: Uint8Array, purpose: string, plaintext: Uint8Array): Uint8Array {
  const key = sealKey(myPrivate, theirPublic, purpose);
  const nonce = randomBytes(XCHACHA_NONCE_BYTES);
  const ct = xchacha20poly1305(key, nonce).encrypt(plaintext);
  const out = new Uint8Array(nonce.length + ct.length);
  out.set(nonce, 0);
  out.set(ct, nonce.length);
  return out;
}

/** Opens a box made by seal(); throws SealError on any tampering, wrong key or wrong purpose. */
export function open(myPrivate: Uint8Array, theirPublic: Uint8Array, purpose: string, box: Uint8Array): Uint8Array {
  if (box.length > MAX_SEALED_BYTES) throw new SealError(`Cannot open sealed box: ${box.length} bytes is over the limit of ${MAX_SEALED_BYTES}`);
  if (box.length < XCHACHA_NONCE_BYTES + POLY1305_TAG_BYTES) throw new SealError(`Cannot open sealed box: ${box.length} bytes is too short`);
  const key = sealKey(myPrivate, theirPublic, purpose);
  try {
    return xchacha20poly1305(key, box.subarray(0, XCHACHA_NONCE_BYTES)).decrypt(box.subarray(XCHACHA_NONCE_BYTES));
  } catch (err) {
    throw new SealError("Cannot open sealed box: authentication failed", { cause: err });
  }
}

function compareBytes(a: Uint8Array, b: Uint8Array): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) if (a[i] !== b[i]) return a[i]! - b[i]!;
  return a.length - b.length;
}
