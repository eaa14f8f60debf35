// /etc/findings/config.toml in the .deb is derived from src/config/defaults.toml: it parses, it
// changes nothing but the settings the package sets on purpose, and it lists every setting.
import { expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS_TOML, embeddedDefaults, loadConfig } from "../../src/config/load.ts";
import { PACKAGE_SETTINGS, packagedConfig, uncommentSettings } from "../../packaging/debian/config.ts";
import { tempDir } from "../helpers.ts";

const text = packagedConfig();

test("the packaged config loads to the defaults, except the package's own settings", () => {
  using home = tempDir();
  const file = join(home.path, "config.toml");
  writeFileSync(file, text);
  const { config, sources } = loadConfig({ home: home.path, configFile: file });
  const expected: Record<string, unknown> = { ...embeddedDefaults() };
  for (const [key, set] of Object.entries(PACKAGE_SETTINGS)) expected[key] = (Bun.TOML.parse(`v = ${set.value}`) as { v: unknown }).v;
  expect(config as unknown as Record<string, unknown>).toEqual(expected);
  // The file sets only the package's settings and the (empty) [stakes] table an operator fills in.
  expect(Object.entries(sources).filter(([, s]) => s === "file").map(([k]) => k).sort()).toEqual([...Object.keys(PACKAGE_SETTINGS), "stakes"].sort());
  expect(config.log_root).toBe("/var/log/findings");
});

test("uncommenting every setting gives back every default value", () => {
  const defaults = Bun.TOML.parse(DEFAULTS_TOML) as Record<string, unknown>;
  const spelledOut = Bun.TOML.parse(uncommentSettings(text)) as Record<string, unknown>;
  for (const key of Object.keys(PACKAGE_SETTINGS)) delete spelledOut[key], delete defaults[key];
  expect(spelledOut).toEqual(defaults);
});

test("the defaults' comments come along, and the header says how to change it", () => {
  for (const line of DEFAULTS_TOML.split("\n").slice(4).filter((l) => l.startsWith("# "))) expect(text).toContain(line);
  expect(text).toStartWith("# /etc/findings/config.toml");
  expect(text).toContain("systemctl restart findings");
  expect(text.trimEnd()).toEndWith("[stakes]");
});
