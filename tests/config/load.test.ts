import { describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { embeddedDefaults, loadConfig } from "../../src/config/load.ts";
import { ConfigError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";

describe("config precedence", () => {
  test("embedded defaults use port 7788 for UDP and TCP", () => {
    const d = embeddedDefaults();
    expect(d.server_uport).toBe(7788);
    expect(d.server_tport).toBe(7788);
    expect(d.shortlist).toBe(100);
    expect(d.punch_xpool).toBe(500);
  });

  test("file overrides defaults, env overrides file, flags override env", () => {
    using home = tempDir();
    writeFileSync(join(home.path, "config.toml"), "server_uport = 1000\nserver_tport = 1001\nshortlist = 50\n");
    const r = loadConfig({ home: home.path, env: { FINDINGS_SERVER_UPORT: "2000", FINDINGS_SERVER_TPORT: "2001" }, flags: { server_uport: 3000 } });
    expect(r.config.shortlist).toBe(50);
    expect(r.config.server_tport).toBe(2001);
    expect(r.config.server_uport).toBe(3000);
    expect(r.sources).toMatchObject({ shortlist: "file", server_tport: "env", server_uport: "flag", peers_help: "defaults" });
  });

  test("--config FILE is used instead of <home>/config.toml", () => {
    using home = tempDir();
    writeFileSync(join(home.path, "config.toml"), "shortlist = 50\n");
    const other = join(home.path, "other.toml");
    writeFileSync(other, "shortlist = 70\n[stakes]\n\"blockchain:bitcoin\" = \"bc1qexample\"\n");
    const r = loadConfig({ home: home.path, configFile: other });
    expect(r.config.shortlist).toBe(70);
    expect(r.config.stakes["blockchain:bitcoin"]).toBe("bc1qexample");
  });

  test("env lists and booleans are parsed", () => {
    using home = tempDir();
    const r = loadConfig({ home: home.path, env: { FINDINGS_PEERS: "127.0.0.1:1, [::1]:2", FINDINGS_PUBLIC: "true" } });
    expect(r.config.peers).toEqual(["127.0.0.1:1", "[::1]:2"]);
    expect(r.config.public).toBe(true);
  });
});

describe("config validation", () => {
  const cases: Array<[string, string, RegExp]> = [
    ["unknown key", "bogus = 1\n", /Invalid config bogus \(in .*\): unknown key/],
    ["port out of range", "server_uport = 70000\n", /server_uport .*70000 is not allowed \(allowed: an integer from 0 to 65535\)/],
    ["wrong type", "public = \"yes\"\n", /public .*"yes" is not allowed \(allowed: true or false\)/],
    ["bad enum", "log_level = \"loud\"\n", /log_level .*"loud" is not allowed \(allowed: debug, info, warn, error\)/],
    ["bad peer address", "peers = [\"nope\"]\n", /peers .*"nope" is not allowed/],
    ["bad stake kind", "[stakes]\n\"Bitcoin\" = \"x\"\n", /stakes\.Bitcoin .*kind "Bitcoin" is not allowed/],
    ["bad stake address", "[stakes]\n\"app:chat\" = 5\n", /stakes\.app:chat .*5 is not allowed/],
    ["zero shortlist", "shortlist = 0\n", /shortlist .*0 is not allowed \(allowed: an integer from 1 to 10000\)/],
    ["not TOML", "this is = = not toml\n", /not valid TOML/],
    ["bad admin", "admin = \"somewhere\"\n", /admin .*"somewhere" is not allowed/],
    ["bad host", "host = \"example.com\"\n", /host .*"example.com" is not allowed \(allowed: an IPv4 or IPv6 address\)/],
    ["no mesh links", "mesh_out = 0\nmesh_in = 0\n", /mesh_out: mesh_out and mesh_in are both 0/],
    ["records re-signed too rarely", "record_max_age_s = 3600\nrecord_resign_s = 1801\n", /record_resign_s: 1801 is more than half of record_max_age_s \(3600\)/],
  ];
  for (const [name, toml, message] of cases) {
    test(`rejects ${name} with a line naming key and value`, () => {
      using home = tempDir();
      writeFileSync(join(home.path, "config.toml"), toml);
      let err: unknown;
      try {
        loadConfig({ home: home.path });
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
      expect((err as Error).message).not.toContain("\n");
    });
  }

  test("rejects an unknown FINDINGS_ environment variable", () => {
    using home = tempDir();
    expect(() => loadConfig({ home: home.path, env: { FINDINGS_NOPE: "1" } })).toThrow(/FINDINGS_NOPE: unknown environment variable/);
  });

  test("rejects a non-integer environment value naming the variable", () => {
    using home = tempDir();
    expect(() => loadConfig({ home: home.path, env: { FINDINGS_SHORTLIST: "many" } })).toThrow(/FINDINGS_SHORTLIST: "many" is not allowed/);
  });

  test("rejects a bad flag value naming the flag", () => {
    using home = tempDir();
    expect(() => loadConfig({ home: home.path, flags: { server_tport: -1 } })).toThrow(/--server_tport: -1 is not allowed/);
  });

  test("rejects a missing --config file", () => {
    using home = tempDir();
    expect(() => loadConfig({ home: home.path, configFile: join(home.path, "missing.toml") })).toThrow(/does not exist/);
  });

  test("rejects an oversized config file", () => {
    using home = tempDir();
    writeFileSync(join(home.path, "config.toml"), "# " + "x".repeat(300 * 1024) + "\n");
    expect(() => loadConfig({ home: home.path })).toThrow(/bytes \(limit/);
  });
});
