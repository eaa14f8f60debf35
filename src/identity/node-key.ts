// The persistent X25519 node key in <home>/node.key and the node id derived from it (DESIGN §3).
import { createHash } from "node:crypto";
import { x25519 } from "@noble/curves/ed25519.js";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { chmodSync, existsSync, openSync, readFileSync, statSync, writeSync, closeSync } from "node:fs";
import { join } from "node:path";
import { X25519_KEY_BYTES } from "../constants.ts";
import { IdentityError } from "../errors.ts";

export interface NodeKey {
  readonly privateKey: Uint8Array;
  readonly publicKey: Uint8Array;
  /** Hex SHA-256 of the public key. */
  readonly nodeId: string;
  readonly publicKeyHex: string;
}

/** File format: one line "findings-node-key-v1 <hex private key>", so a truncated or foreign file is
 *  told apart from a valid one. */
const KEY_FILE_TAG = "findings-node-key-v1";
export const NODE_KEY_FILE = "node.key";

/** SHA-256 of the public key, in hex (the runtime's native hash: ids are computed for every record
 *  that passes by). */
export function nodeIdOf(publicKey: Uint8Array): string {
  const hit = ids.get(publicKey);
  // The bytes of a key object could have been changed in place: compare before trusting the entry.
  if (hit && isSame(hit.copy, publicKey)) return hit.id;
  const id = createHash("sha256").update(publicKey).digest("hex");
  ids.set(publicKey, { copy: publicKey.slice(), id });
  return id;
}

/** Node ids by key object: a record's key is looked up many times while it passes through a node. */
const ids = new WeakMap<Uint8Array, { copy: Uint8Array; id: string }>();

function isSame(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function nodeKeyFromPrivate(privateKey: Uint8Array): NodeKey {
  const publicKey = x25519.getPublicKey(privateKey);
  return { privateKey, publicKey, nodeId: nodeIdOf(publicKey), publicKeyHex: bytesToHex(publicKey) };
}

export function generateNodeKey(): NodeKey {
  return nodeKeyFromPrivate(x25519.utils.randomSecretKey());
}

/** Loads <home>/node.key, creating it (mode 0600) on first use. Refuses a key file that others can
 *  read or that does not parse: a leaked or damaged key must be noticed, not silently replaced. */
export function loadOrCreateNodeKey(home: string): NodeKey {
  const file = join(home, NODE_KEY_FILE);
  if (!existsSync(file)) {
    const key = generateNodeKey();
    // O_EXCL: two processes starting at once must not both write a key.
    const fd = openSync(file, "wx", 0o600);
    try {
      writeSync(fd, `${KEY_FILE_TAG} ${bytesToHex(key.privateKey)}\n`);
    } finally {
      closeSync(fd);
    }
    chmodSync(file, 0o600);
    return key;
  }
  const mode = statSync(file).mode & 0o777;
  if (mode & 0o077) {
    throw new IdentityError(
      `Cannot use node key ${file}: it is readable by others (mode ${mode.toString(8).padStart(4, "0")}); run chmod 600 on it`,
    );
  }
  const text = readFileSync(file, "utf8").trim();
  const [tag, hex, ...rest] = text.split(/\s+/);
  if (tag !== KEY_FILE_TAG || !hex || rest.length || !/^[0-9a-f]+$/.test(hex) || hex.length !== X25519_KEY_BYTES * 2) {
    throw new IdentityError(`Cannot use node key ${file}: the file is corrupt (expected "${KEY_FILE_TAG} <64 hex digits>")`);
  }
  return nodeKeyFromPrivate(hexToBytes(hex));
}
