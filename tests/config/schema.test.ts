import { describe, expect, test } from "bun:test";
import { DEFAULTS, DEFAULTS_TOML, embeddedDefaults, parseToml } from "../../src/config/defaults.ts";
import { loadConfig } from "../../src/config/load.ts";
import { SCHEMA, checkValue, type Config, type ConfigKey, type LogLevel } from "../../src/config/schema.ts";
import { ConfigError } from "../../src/errors.ts";
import { tempDir } from "../helpers.ts";

describe("defaults.toml and SCHEMA state the same keys", () => {
  const tomlKeys = Object.keys(parseToml(DEFAULTS_TOML, "defaults")).sort();
  const schemaKeys = Object.keys(SCHEMA).sort();

  test("every SCHEMA key has a default in defaults.toml", () => {
    expect(schemaKeys.filter((k) => !tomlKeys.includes(k))).toEqual([]);
  });

  test("every defaults.toml key is in SCHEMA", () => {
    expect(tomlKeys.filter((k) => !schemaKeys.includes(k))).toEqual([]);
  });
});

describe("embedded defaults", () => {
  test("load and pass every key's rule", () => {
    const d = embeddedDefaults();
    for (const key of Object.keys(SCHEMA) as ConfigKey[]) expect(checkValue(key, d[key])).toEqual(d[key]);
  });

  test("are what a node with no file, env or flags runs with", () => {
    using home = tempDir();
    expect(loadConfig({ home: home.path }).config).toEqual(embeddedDefaults());
  });

  test("DEFAULTS is the parsed defaults, frozen", () => {
    expect(DEFAULTS).toEqual(embeddedDefaults());
    expect(Object.isFrozen(DEFAULTS)).toBe(true);
    expect(DEFAULTS.idle_timeout_s).toBe(30);
    expect(DEFAULTS.probe_timeout_s).toBe(6);
  });

  test("each value has the type its rule infers", () => {
    // Compile-time: these assignments fail tsc if the derived Config type drifts from the rules.
    const level: LogLevel = DEFAULTS.log_level;
    const peers: string[] = [...DEFAULTS.peers];
    const shortlist: number = DEFAULTS.shortlist;
    const isPublic: boolean = DEFAULTS.public;
    const stakes: Record<string, string> = DEFAULTS.stakes;
    const host: Config["host"] = DEFAULTS.host;
    expect([typeof level, Array.isArray(peers), typeof shortlist, typeof isPublic, typeof stakes, typeof host]).toEqual([
      "string",
      true,
      "number",
      "boolean",
      "object",
      "string",
    ]);
  });
});

describe("rule errors are one line naming key, value and what is allowed", () => {
  const cases: Array<[ConfigKey | "bogus", unknown, RegExp]> = [
    ["mesh_out", 65, /^Invalid config mesh_out: 65 is not allowed \(allowed: an integer from 0 to 64\)$/],
    ["log_level", "loud", /^Invalid config log_level: "loud" is not allowed \(allowed: debug, info, warn, error\)$/],
    ["user_id", "has space", /^Invalid config user_id: "has space" is not allowed \(allowed: up to 64 printable characters without spaces\)$/],
    ["stakes", [], /^Invalid config stakes: \[\] is not allowed \(allowed: a table of kind = "address"\)$/],
    ["bogus", 1, /^Invalid config bogus: unknown key \(known keys: user_id, .*, peer_cache_days, \[stakes\]\)$/],
  ];
  for (const [key, value, message] of cases)
    test(`${key} = ${JSON.stringify(value)}`, () => {
      let err: unknown;
      try {
        checkValue(key, value);
      } catch (e) {
        err = e;
      }
      expect(err).toBeInstanceOf(ConfigError);
      expect((err as Error).message).toMatch(message);
    });

  test("the [stakes] table has no environment variable", () => {
    using home = tempDir();
    expect(() => loadConfig({ home: home.path, env: { FINDINGS_STAKES: "x" } })).toThrow(/FINDINGS_STAKES: unknown environment variable/);
  });
});
