// The embedded defaults (defaults.toml, compiled into the binary): the one place where each tunable's
// default is stated. The node passes the loaded config to its services; DEFAULTS is what a service,
// client or test falls back to when it is built without one.
import defaultsText from "./defaults.toml" with { type: "text" };
import { ConfigError } from "../errors.ts";
import { checkValue, type Config } from "./schema.ts";

export const DEFAULTS_TOML: string = defaultsText;

export function parseToml(text: string, where: string): Record<string, unknown> {
  try {
    return Bun.TOML.parse(text) as Record<string, unknown>;
  } catch (err) {
    throw new ConfigError(where, `not valid TOML: ${err instanceof Error ? err.message : String(err)}`);
  }
}

/** A fresh, validated copy of the embedded defaults. */
export function embeddedDefaults(): Config {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(parseToml(DEFAULTS_TOML, "defaults"))) out[k] = checkValue(k, v);
  return out as Config;
}

/** The embedded defaults, parsed once. */
export const DEFAULTS: Readonly<Config> = Object.freeze(embeddedDefaults());
