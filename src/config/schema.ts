// The configuration schema: every key, its type and allowed values (DESIGN §9). The defaults are in
// defaults.toml; the Config type is derived from SCHEMA, so a key is declared once here.
import { ConfigError } from "../errors.ts";
import { isValidKind, MAX_IDENTITY_ID_CHARS, MAX_KIND_CHARS, MAX_RECORD_KINDS, MAX_STAKE_ADDRESS_CHARS } from "../wire/index.ts";

type Rule =
  | { type: "int"; min: number; max: number }
  | { type: "string"; pattern?: RegExp; allowed?: string }
  | { type: "enum"; values: readonly string[] }
  | { type: "bool" }
  | { type: "addr-list" }
  | { type: "addr-or-empty" }
  | { type: "stakes" };

/** The value type a rule admits. */
type ValueOf<R> = R extends { type: "int" }
  ? number
  : R extends { type: "enum"; values: readonly (infer V)[] }
    ? V
    : R extends { type: "bool" }
      ? boolean
      : R extends { type: "addr-list" }
        ? string[]
        : R extends { type: "stakes" }
          ? Record<string, string>
          : string;

export const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

const port = { type: "int", min: 0, max: 65535 } as const;
const count = (min: number, max: number) => ({ type: "int", min, max }) as const;

export const SCHEMA = {
  // The same limits as a node record's identity id, so every valid config makes a valid record.
  user_id: { type: "string", pattern: new RegExp(`^[\\x21-\\x7e]{0,${MAX_IDENTITY_ID_CHARS}}$`), allowed: `up to ${MAX_IDENTITY_ID_CHARS} printable characters without spaces` },
  log_root: { type: "string" },
  log_level: { type: "enum", values: LOG_LEVELS },
  host: { type: "string", pattern: /^[0-9a-fA-F.:]+$/, allowed: "an IPv4 or IPv6 address" },
  advertise: { type: "string", pattern: /^[0-9a-fA-F.:, ]*$/, allowed: "IP addresses separated by commas, or \"\"" },
  server_uport: port,
  server_tport: port,
  admin: { type: "addr-or-empty" },
  peers: { type: "addr-list" },
  public: { type: "bool" },
  client_only: { type: "bool" },
  network: { type: "string", pattern: /^[a-z0-9][a-z0-9._-]{0,31}$/, allowed: "1-32 of a-z 0-9 . _ -, starting with a letter or digit" },
  natd_links: count(0, 16),
  stun_on: { type: "bool" },
  stun_rate_per_s: count(1, 1_000_000),
  stun_burst: count(1, 1_000_000),
  shortlist: count(1, 10_000),
  mesh_out: count(0, 64),
  mesh_in: count(0, 64),
  mesh_switch_s: count(1, 86_400),
  peers_help: count(1, 100),
  mesh_share: count(0, 100),
  record_max_age_s: count(60, 30 * 86_400),
  record_resign_s: count(10, 7 * 86_400),
  punch_xpool: count(1, 100_000),
  peers_punch: count(1, 100),
  punch_per_conn: count(1, 1000),
  punch_per_prefix: count(1, 100_000),
  punch_liveness_s: count(5, 86_400),
  punch_spray_nat_cones: { type: "bool" },
  share_xpool: count(1, 100_000),
  max_quic_connections: count(1, 1_000_000),
  max_quic_handshakes: count(1, 100_000),
  max_mesh_links: count(1, 100_000),
  max_conns_per_ip: count(1, 100_000),
  max_links_per_ip: count(1, 100_000),
  mesh_per_prefix: count(1, 64),
  candidates_per_prefix: count(1, 10_000),
  allow_special_targets: { type: "bool" },
  idle_timeout_s: count(1, 3600),
  probe_timeout_s: count(1, 600),
  peer_cache_days: count(0, 365),
  /** App kind → reward address; "*" is the default address. The one table: layers merge into it. */
  stakes: { type: "stakes" },
} as const satisfies Record<string, Rule>;

export type ConfigKey = keyof typeof SCHEMA;

/** The effective configuration: one field per SCHEMA key, typed by its rule. */
export type Config = { -readonly [K in ConfigKey]: ValueOf<(typeof SCHEMA)[K]> };

/** "ip:port", "[v6]:port", optionally "#<64 hex>" (DESIGN §9). */
export const ADDR_PATTERN = /^(?:\d{1,3}(?:\.\d{1,3}){3}|\[[0-9a-fA-F:.]+\]):\d{1,5}(?:#[0-9a-f]{64})?$/;

/** Listed in the unknown-key error; tables in brackets, as in TOML. */
const KNOWN_KEYS = Object.entries(SCHEMA)
  .map(([k, rule]) => (rule.type === "stakes" ? `[${k}]` : k))
  .join(", ");

function show(value: unknown): string {
  return typeof value === "string" ? JSON.stringify(value) : Array.isArray(value) ? JSON.stringify(value) : String(value);
}

/** Checks one value; returns it normalised or throws ConfigError naming key, value and what is allowed. */
export function checkValue(key: string, value: unknown): unknown {
  const rule = (SCHEMA as Record<string, Rule>)[key];
  if (!rule) throw new ConfigError(key, `unknown key (known keys: ${KNOWN_KEYS})`);
  switch (rule.type) {
    case "int":
      if (typeof value !== "number" || !Number.isInteger(value) || value < rule.min || value > rule.max)
        throw new ConfigError(key, `${show(value)} is not allowed (allowed: an integer from ${rule.min} to ${rule.max})`);
      return value;
    case "bool":
      if (typeof value !== "boolean") throw new ConfigError(key, `${show(value)} is not allowed (allowed: true or false)`);
      return value;
    case "enum":
      if (typeof value !== "string" || !rule.values.includes(value))
        throw new ConfigError(key, `${show(value)} is not allowed (allowed: ${rule.values.join(", ")})`);
      return value;
    case "string":
      if (typeof value !== "string" || (rule.pattern && !rule.pattern.test(value)))
        throw new ConfigError(key, `${show(value)} is not allowed (allowed: ${rule.allowed ?? "a string"})`);
      return value;
    case "addr-or-empty":
      if (typeof value !== "string" || (value !== "" && !ADDR_PATTERN.test(value) && !/^localhost:\d{1,5}$/.test(value)))
        throw new ConfigError(key, `${show(value)} is not allowed (allowed: "ip:port", "[v6]:port" or "" for off)`);
      return value;
    case "addr-list": {
      if (!Array.isArray(value)) throw new ConfigError(key, `${show(value)} is not allowed (allowed: a list of "ip:port[#key]")`);
      for (const v of value)
        if (typeof v !== "string" || !ADDR_PATTERN.test(v))
          throw new ConfigError(key, `${show(v)} is not allowed (allowed: "ip:port", "[v6]:port", optionally "#<64 hex key>")`);
      return [...value];
    }
    case "stakes":
      return checkStakes(value);
  }
}


export function checkStakes(value: unknown): Record<string, string> {
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw new ConfigError("stakes", `${show(value)} is not allowed (allowed: a table of kind = "address")`);
  const out: Record<string, string> = {};
  if (Object.keys(value).length > MAX_RECORD_KINDS)
    throw new ConfigError("stakes", `${Object.keys(value).length} kinds is not allowed (allowed: at most ${MAX_RECORD_KINDS}, what a node record carries)`);
  for (const [kind, addr] of Object.entries(value)) {
    // App kinds look like "blockchain:bitcoin", "app:chat", "depots:x" (seed 001 §应用节点): the record's rule.
    if (kind !== "*" && !isValidKind(kind))
      throw new ConfigError(`stakes.${kind}`, `kind ${show(kind)} is not allowed (allowed: "*" or "family:name" of up to ${MAX_KIND_CHARS} characters, e.g. "blockchain:bitcoin")`);
    if (typeof addr !== "string" || addr.length > MAX_STAKE_ADDRESS_CHARS || !/^[\x21-\x7e]*$/.test(addr))
      throw new ConfigError(`stakes.${kind}`, `${show(addr)} is not allowed (allowed: an address of up to ${MAX_STAKE_ADDRESS_CHARS} printable characters)`);
    out[kind] = addr;
  }
  return out;
}
