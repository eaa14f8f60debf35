import { describe, expect, test } from "bun:test";
import { chmodSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { loadOrCreateNodeKey, nodeIdOf } from "../../src/identity/node-key.ts";
import { IdentityError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";

describe("node key", () => {
  test("is created with mode 0600 and reused across restarts", () => {
    using home = tempDir();
    const a = loadOrCreateNodeKey(home.path);
    expect(statSync(join(home.path, "node.key")).mode & 0o777).toBe(0o600);
    const b = loadOrCreateNodeKey(home.path);
    expect(b.nodeId).toBe(a.nodeId);
    expect(b.publicKeyHex).toBe(a.publicKeyHex);
  });

  test("node id is the hex SHA-256 of the public key", () => {
    using home = tempDir();
    const k = loadOrCreateNodeKey(home.path);
    expect(k.nodeId).toBe(new Bun.CryptoHasher("sha256").update(k.publicKey).digest("hex"));
    expect(nodeIdOf(k.publicKey)).toBe(k.nodeId);
  });

  test("refuses a key file readable by others", () => {
    using home = tempDir();
    loadOrCreateNodeKey(home.path);
    chmodSync(join(home.path, "node.key"), 0o644);
    expect(() => loadOrCreateNodeKey(home.path)).toThrow(IdentityError);
    expect(() => loadOrCreateNodeKey(home.path)).toThrow(/readable by others \(mode 0644\)/);
  });

  for (const [name, text] of [
    ["truncated", "findings-node-key-v1 abcd\n"],
    ["foreign", "-----BEGIN PRIVATE KEY-----\n"],
    ["empty", ""],
    ["non-hex", `findings-node-key-v1 ${"zz".repeat(32)}\n`],
  ] as const) {
    test(`refuses a ${name} key file`, () => {
      using home = tempDir();
      const file = join(home.path, "node.key");
      writeFileSync(file, text, { mode: 0o600 });
      expect(() => loadOrCreateNodeKey(home.path)).toThrow(/the file is corrupt/);
      expect(readFileSync(file, "utf8")).toBe(text); // a bad key is reported, never replaced
    });
  }
});
