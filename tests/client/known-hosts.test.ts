// Node keys learned on first use (src/client/known-hosts.ts): remembered in a small file with mode 0600, a
// different key for a known address refused loudly, forgotten on request, a broken file named.
import { describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KeyChangedError, openKnownHosts } from "../../src/client/known-hosts.ts";
import { ConfigError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";

const K1 = "11".repeat(32);
const K2 = "22".repeat(32);

describe("known hosts", () => {
  test("a learned key is written to the file (mode 0600) and read back by the next session", () => {
    using home = tempDir();
    const file = join(home.path, "known_hosts.json");
    const a = openKnownHosts(file);
    expect(a.get("192.0.2.1:7788")).toBeUndefined();
    a.remember("192.0.2.1:7788", K1);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const b = openKnownHosts(file);
    expect(b.get("192.0.2.1:7788")?.key).toBe(K1);
    expect(b.list()).toEqual([{ address: "192.0.2.1:7788", key: K1, firstSeen: expect.any(String) }]);
  });

  test("another key for a known address is refused until the address is forgotten", () => {
    using home = tempDir();
    const file = join(home.path, "known_hosts.json");
    const hosts = openKnownHosts(file);
    hosts.remember("192.0.2.1:7788", K1);
    hosts.remember("192.0.2.1:7788", K1); // the same key again: nothing changes
    expect(() => hosts.remember("192.0.2.1:7788", K2)).toThrow(KeyChangedError);
    expect(() => hosts.remember("192.0.2.1:7788", K2)).toThrow(/CHANGED.*known-hosts --forget 192\.0\.2\.1:7788/);
    expect(hosts.forget("192.0.2.1:7788")).toBe(true);
    expect(hosts.forget("192.0.2.1:7788")).toBe(false);
    hosts.remember("192.0.2.1:7788", K2);
    expect(openKnownHosts(file).get("192.0.2.1:7788")?.key).toBe(K2);
  });

  test("a file that is not JSON, or too large, is named with what to do; bad entries are skipped", () => {
    using home = tempDir();
    const file = join(home.path, "known_hosts.json");
    writeFileSync(file, "{not json");
    expect(() => openKnownHosts(file)).toThrow(ConfigError);
    writeFileSync(file, "x".repeat(300 * 1024));
    expect(() => openKnownHosts(file)).toThrow(/larger than/);
    writeFileSync(file, JSON.stringify({ hosts: { "192.0.2.1:7788": { key: "not hex" }, "192.0.2.2:7788": { key: K1 } } }));
    expect(openKnownHosts(file).list().map((h) => h.address)).toEqual(["192.0.2.2:7788"]);
    expect(JSON.parse(readFileSync(file, "utf8")).hosts["192.0.2.1:7788"]).toBeDefined();
  });

  test("without a file the keys live in memory for the session", () => {
    const hosts = openKnownHosts(undefined);
    hosts.remember("[2001:db8::1]:7788", K1);
    expect(hosts.get("[2001:db8::1]:7788")?.key).toBe(K1);
    expect(hosts.file).toBeUndefined();
  });
});
