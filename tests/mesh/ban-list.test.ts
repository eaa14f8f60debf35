// Ban list: temporary bans by node id and IP, expiry, caps, and user entries from bans.json (DESIGN §5).
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ConfigError } from "../../src/errors.ts";
import { createBanList, DEFAULT_BAN_MS, loadUserBans, MAX_BANS_FILE_BYTES, parseUserBans } from "../../src/mesh/ban-list.ts";

const T0 = 1_700_000_000_000;
const ID = "ab".repeat(32);
const OTHER = "cd".repeat(32);

describe("temporary bans", () => {
  test("a node id is banned for 4 hours by default, then free", () => {
    const b = createBanList();
    expect(b.ban(ID, { reason: "bad key", now: T0 })).toBe(true);
    expect(b.isBanned(ID, T0)).toBe(true);
    expect(b.isBanned(ID.toUpperCase(), T0 + DEFAULT_BAN_MS - 1)).toBe(true);
    expect(b.isBanned(ID, T0 + DEFAULT_BAN_MS)).toBe(false);
    expect(b.isBanned(OTHER, T0)).toBe(false);
  });

  test("an IP ban also matches the IPv4-mapped IPv6 form a dual-stack socket reports", () => {
    const b = createBanList();
    b.ban("203.0.113.9", { reason: "flood", now: T0 });
    expect(b.isBanned("::ffff:203.0.113.9", T0)).toBe(true);
    expect(b.isBanned("203.0.113.10", T0)).toBe(false);
    b.ban("2001:DB8::1", { reason: "flood", now: T0 });
    expect(b.isBanned("2001:db8::1", T0)).toBe(true);
  });

  test("banning again extends the ban and never shortens it", () => {
    const b = createBanList({ banMs: 1000 });
    b.ban(ID, { reason: "first", now: T0 });
    b.ban(ID, { reason: "second", now: T0 + 500 });
    expect(b.isBanned(ID, T0 + 1200)).toBe(true);
    b.ban(ID, { reason: "short", now: T0 + 600, ms: 1 });
    expect(b.isBanned(ID, T0 + 1400)).toBe(true);
    expect(b.list(T0 + 700)).toMatchObject([{ target: ID, reason: "short", expiresAt: T0 + 1500 }]);
  });

  test("something that is neither a node id nor an IP is not banned and not stored", () => {
    const b = createBanList();
    expect(b.ban("example.org", { reason: "x", now: T0 })).toBe(false);
    expect(b.isBanned("example.org", T0)).toBe(false);
    expect(b.size).toBe(0);
  });

  test("past the cap the ban expiring first is dropped", () => {
    const b = createBanList({ maxEntries: 2 });
    b.ban(ID, { reason: "a", now: T0, ms: 100 });
    b.ban(OTHER, { reason: "b", now: T0, ms: 200 });
    b.ban("203.0.113.1", { reason: "c", now: T0, ms: 300 });
    expect(b.isBanned(ID, T0)).toBe(false);
    expect(b.isBanned(OTHER, T0)).toBe(true);
    expect(b.isBanned("203.0.113.1", T0)).toBe(true);
  });

  test("list shows live bans by expiry and prune drops expired ones", () => {
    const b = createBanList();
    b.ban("203.0.113.1", { reason: "late", now: T0, ms: 300 });
    b.ban(ID, { reason: "early", now: T0, ms: 100 });
    expect(b.list(T0).map((e) => e.reason)).toEqual(["early", "late"]);
    expect(b.list(T0 + 150)).toEqual([{ target: "203.0.113.1", kind: "ip", reason: "late", source: "temporary", since: T0, expiresAt: T0 + 300 }]);
    expect(b.prune(T0 + 400)).toBe(1);
    expect(b.size).toBe(0);
  });

  test("unban lifts a temporary ban", () => {
    const b = createBanList();
    b.ban(ID, { reason: "x", now: T0 });
    expect(b.unban(ID)).toBe(true);
    expect(b.isBanned(ID, T0)).toBe(false);
  });
});

describe("user entries", () => {
  test("user ids and IP ranges never expire and show in the list", () => {
    const b = createBanList();
    b.setUserEntries(parseUserBans(JSON.stringify({ ids: [ID.toUpperCase()], ips: ["198.51.100.0/24", "2001:db8::/32", "203.0.113.77"] })));
    const later = T0 + 365 * 24 * 3600_000;
    expect(b.isBanned(ID, later)).toBe(true);
    expect(b.isBanned("198.51.100.200", later)).toBe(true);
    expect(b.isBanned("198.51.101.1", later)).toBe(false);
    expect(b.isBanned("2001:db8:1::9", later)).toBe(true);
    expect(b.isBanned("::ffff:203.0.113.77", later)).toBe(true);
    expect(b.list(later).map((e) => [e.target, e.source, e.expiresAt])).toEqual([
      [ID, "user", null],
      ["198.51.100.0/24", "user", null],
      ["2001:db8::/32", "user", null],
      ["203.0.113.77", "user", null],
    ]);
  });

  const bad: [string, string, RegExp][] = [
    ["not JSON", "{ids:", /bans\.json: is not valid JSON/],
    ["a list at the top", "[]", /must be a JSON object/],
    ["an unknown key", '{"hosts": []}', /bans\.json hosts: is not a known key/],
    ["ids that are not a list", '{"ids": "x"}', /bans\.json ids: must be a list/],
    ["a short node id", '{"ids": ["abc"]}', /bans\.json ids\[0\]: "abc" is not a node id/],
    ["a number in ips", '{"ips": [5]}', /bans\.json ips\[0\]: must be a string/],
    ["a host name in ips", '{"ips": ["1.2.3.4", "example.org"]}', /bans\.json ips\[1\]: "example.org" is not an IP address/],
    ["a prefix over 32", '{"ips": ["10.0.0.0/33"]}', /prefix length out of range 0\.\.32/],
  ];
  for (const [what, text, message] of bad) {
    test(`bans.json with ${what} is a ConfigError naming the problem`, () => {
      let err: unknown;
      try {
        parseUserBans(text);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    });
  }

  const home = mkdtempSync(join(tmpdir(), "findings-bans-"));
  afterAll(() => rmSync(home, { recursive: true, force: true }));

  test("a missing bans.json means no user entries", () => {
    expect(loadUserBans(join(home, "nowhere"))).toEqual({ ids: [], ips: [] });
  });

  test("bans.json is read from the home folder", () => {
    writeFileSync(join(home, "bans.json"), JSON.stringify({ ids: [ID], ips: ["203.0.113.5"] }));
    expect(loadUserBans(home)).toEqual({ ids: [ID], ips: ["203.0.113.5"] });
  });

  test(`a bans.json over ${MAX_BANS_FILE_BYTES} bytes is refused with the path in the error`, () => {
    const dir = mkdtempSync(join(home, "big-"));
    writeFileSync(join(dir, "bans.json"), " ".repeat(MAX_BANS_FILE_BYTES + 1));
    expect(() => loadUserBans(dir)).toThrow(/bans\.json: is \d+ bytes, limit is/);
  });
});

test("a temporary ban of an IPv6 address covers its /64 (one host's share), not the next /64", () => {
  const bans = createBanList();
  bans.ban("2001:db8:1:2::5", { reason: "forged record", now: 0 });
  expect(bans.isBanned("2001:db8:1:2::5", 1)).toBe(true);
  expect(bans.isBanned("2001:db8:1:2:ffff::99", 1)).toBe(true);
  expect(bans.isBanned("2001:db8:1:3::5", 1)).toBe(false);
  expect(bans.list(1).map((e) => e.target)).toEqual(["2001:db8:1:2::/64"]);
});
