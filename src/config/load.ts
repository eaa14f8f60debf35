// Builds the effective configuration: embedded defaults < config file < FINDINGS_* env < flags (DESIGN §9).
import { existsSync, readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { embeddedDefaults, parseToml } from "./defaults.ts";
import { SCHEMA, checkStakes, checkValue, type Config, type ConfigKey } from "./schema.ts";

export { DEFAULTS_TOML, embeddedDefaults } from "./defaults.ts";
export const CONFIG_FILE = "config.toml";
/** Largest config file read from disk; a config is a few hundred bytes. */
const MAX_CONFIG_BYTES = 256 * 1024;
/** Environment variables that are not config keys: where the config comes from, and the CLI's progress line
 *  switch (src/cli/common.ts PROGRESS_ENV). */
const ENV_LOCATIONS = new Set(["FINDINGS_HOME", "FINDINGS_CONFIG", "FINDINGS_PROGRESS"]);

export type Overrides = Partial<Record<ConfigKey, unknown>>;

export interface LoadOptions {
  home: string;
  /** --config FILE; when absent <home>/config.toml is read if it exists. */
  configFile?: string;
  env?: Record<string, string | undefined>;
  /** Flag values already mapped to config keys. */
  flags?: Overrides;
}

export interface LoadedConfig {
  config: Config;
  /** Which layer set each key last, for `findings config --json`. */
  sources: Record<string, "defaults" | "file" | "env" | "flag">;
  file?: string;
}

/** Reads FINDINGS_<KEY> variables, converting text by the key's type. */
export function envOverrides(env: Record<string, string | undefined>): Overrides {
  const out: Record<string, unknown> = {};
  for (const [name, text] of Object.entries(env)) {
    if (!name.startsWith("FINDINGS_") || text === undefined || ENV_LOCATIONS.has(name)) continue;
    const key = name.slice("FINDINGS_".length).toLowerCase();
    const rule = (SCHEMA as Record<string, { type: string }>)[key];
    // [stakes] is a table: it has no FINDINGS_ variable.
    if (!rule || rule.type === "stakes") throw new ConfigError(name, `unknown environment variable (allowed: FINDINGS_<KEY> for a key listed by "findings config --defaults")`);
    out[key] = fromText(name, rule.type, text);
  }
  return out as Overrides;
}

/** Converts a flag or environment string to the key's type; the schema check comes after. */
export function fromText(key: string, type: string, text: string): unknown {
  switch (type) {
    case "int":
      if (!/^-?\d+$/.test(text.trim())) throw new ConfigError(key, `${JSON.stringify(text)} is not allowed (allowed: an integer)`);
      return Number(text.trim());
    case "bool":
      if (/^(true|1|yes)$/i.test(text)) return true;
      if (/^(false|0|no)$/i.test(text)) return false;
      throw new ConfigError(key, `${JSON.stringify(text)} is not allowed (allowed: true or false)`);
    case "addr-list":
      return text.split(",").map((s) => s.trim()).filter(Boolean);
    default:
      return text;
  }
}

export function loadConfig(opts: LoadOptions): LoadedConfig {
  const config = embeddedDefaults();
  const sources: LoadedConfig["sources"] = {};
  for (const k of Object.keys(config)) sources[k] = "defaults";
  const apply = (layer: Overrides, source: "file" | "env" | "flag", where: (key: string) => string) => {
    for (const [key, value] of Object.entries(layer)) {
      if (value === undefined) continue;
      try {
        if (key === "stakes") config.stakes = { ...config.stakes, ...checkStakes(value) };
        else (config as Record<string, unknown>)[key] = checkValue(key, value);
      } catch (err) {
        if (err instanceof ConfigError) throw new ConfigError(where(err.key), err.message.replace(/^Invalid config [^:]+: /, ""));
        throw err;
      }
      sources[key] = source;
    }
  };

  const file = opts.configFile ?? join(opts.home, CONFIG_FILE);
  let usedFile: string | undefined;
  if (opts.configFile !== undefined || existsSync(file)) {
    if (!existsSync(file)) throw new ConfigError("--config", `file ${file} does not exist`);
    const size = statSync(file).size;
    if (size > MAX_CONFIG_BYTES) throw new ConfigError("--config", `file ${file} is ${size} bytes (limit ${MAX_CONFIG_BYTES})`);
    apply(parseToml(readFileSync(file, "utf8"), file) as Overrides, "file", (k) => `${k} (in ${file})`);
    usedFile = file;
  }
  apply(envOverrides(opts.env ?? {}), "env", (k) => (k.startsWith("FINDINGS_") ? k : `FINDINGS_${k.toUpperCase()}`));
  apply(opts.flags ?? {}, "flag", (k) => `--${k}`);
  if (config.record_resign_s * 2 > config.record_max_age_s)
    throw new ConfigError("record_resign_s", `${config.record_resign_s} is more than half of record_max_age_s (${config.record_max_age_s}): a live node's record would expire between re-signs`);
  if (config.mesh_out + config.mesh_in === 0 && !config.client_only)
    throw new ConfigError("mesh_out", "mesh_out and mesh_in are both 0 (allowed: at least one link, or client_only = true)");
  return { config, sources, file: usedFile };
}

/** The effective configuration as TOML text, for `findings config`. */
export function configToToml(config: Config): string {
  const lines: string[] = [];
  for (const [k, v] of Object.entries(config)) if (k !== "stakes") lines.push(`${k} = ${tomlValue(v)}`);
  lines.push("", "[stakes]");
  for (const [k, v] of Object.entries(config.stakes)) lines.push(`${JSON.stringify(k)} = ${JSON.stringify(v)}`);
  return lines.join("\n") + "\n";
}

function tomlValue(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map((x) => JSON.stringify(x)).join(", ")}]`;
  return typeof v === "string" ? JSON.stringify(v) : String(v);
}
