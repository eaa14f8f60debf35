// Ban list: temporary bans of misbehaving peers by node id and IP, plus user entries from <home>/bans.json (DESIGN §5, seed 001 §公钥广播与验证).
//
// Temporary bans (default 4 h) come from the node itself: a peer that shared a record whose key
// failed the check, broke the protocol, or flooded. User entries never expire and may name IP
// ranges ("203.0.113.0/24"). Applied to inbound links and to shared lists (candidate-pool.ts
// planMerge's isBanned). Pure apart from loadUserBans, which reads the file.
import { readFileSync, statSync } from "node:fs";
import { BlockList, isIP } from "node:net";
import { join } from "node:path";
import { ConfigError } from "../errors.ts";
import { prefixOf } from "../rpc/index.ts";
import { normalizeIp } from "./candidate-pool.ts";

/** Temporary ban length (DESIGN §5: 4 h). */
export const DEFAULT_BAN_MS = 4 * 60 * 60_000;
/** Most temporary bans held; past it the one expiring first goes (a flood of bad peers must not grow
 *  memory without bound). */
const MAX_TEMP_BANS = 10_000;
/** Largest <home>/bans.json read, in bytes. */
export const MAX_BANS_FILE_BYTES = 1024 * 1024;
const BANS_FILE = "bans.json";

export type BanKind = "id" | "ip";

export interface BanEntry {
  /** Node id (64 hex), IP, or for user entries an IP range "ip/prefix". */
  target: string;
  kind: BanKind;
  reason: string;
  source: "temporary" | "user";
  /** null for user entries. */
  since: number | null;
  expiresAt: number | null;
}

export interface UserBans {
  ids: string[];
  ips: string[];
}

export interface BanListInit {
  /** Length of a temporary ban. @default DEFAULT_BAN_MS (4 h) */
  banMs?: number;
  /** Most temporary bans; past it the one expiring first is dropped. @default MAX_TEMP_BANS */
  maxEntries?: number;
}

export interface BanList {
  readonly size: number;
  /** Bans a node id or IP until now + ms (extending an existing ban, never shortening it). Returns
   *  false when `idOrIp` is neither a node id nor an IP. */
  ban(idOrIp: string, init: { reason: string; now: number; ms?: number }): boolean;
  unban(idOrIp: string): boolean;
  isBanned(idOrIp: string, now: number): boolean;
  /** Replaces the user entries (from loadUserBans). */
  setUserEntries(bans: UserBans): void;
  /** Live entries for /status: user entries first, then temporary ones by expiry. */
  list(now: number): BanEntry[];
  /** Drops expired temporary bans; returns how many. */
  prune(now: number): number;
}

const NODE_ID_PATTERN = /^[0-9a-f]{64}$/;

export function isNodeId(text: string): boolean {
  return NODE_ID_PATTERN.test(text.toLowerCase());
}

/** "id" | "ip" with the normalized target (what a temporary ban is keyed by: an IPv6 address bans its
 *  whole /64, the share of one host), and the address itself for the user's ranges; or null. */
function classify(idOrIp: string): { kind: BanKind; target: string; ip?: string } | null {
  const t = idOrIp.trim();
  if (isNodeId(t)) return { kind: "id", target: t.toLowerCase() };
  const ip = normalizeIp(t);
  if (isIP(ip) === 4) return { kind: "ip", target: ip, ip };
  if (isIP(ip) === 6) return { kind: "ip", target: prefixOf(ip, 32, 64), ip };
  return null;
}

export function createBanList(init: BanListInit = {}): BanList {
  const banMs = init.banMs ?? DEFAULT_BAN_MS;
  const maxEntries = init.maxEntries ?? MAX_TEMP_BANS;
  const temp = new Map<string, BanEntry>();
  let userIds = new Set<string>();
  let userIps: string[] = [];
  let userBlock = new BlockList();

  function prune(now: number): number {
    let n = 0;
    for (const [k, e] of temp) {
      if (e.expiresAt! <= now) {
        temp.delete(k);
        n++;
      }
    }
    return n;
  }

  return {
    get size() {
      return temp.size + userIds.size + userIps.length;
    },
    ban(idOrIp, { reason, now, ms }) {
      const c = classify(idOrIp);
      if (!c) return false;
      const expiresAt = now + (ms ?? banMs);
      const prev = temp.get(c.target);
      if (prev && prev.expiresAt! > now) {
        prev.expiresAt = Math.max(prev.expiresAt!, expiresAt);
        prev.reason = reason;
        return true;
      }
      if (temp.size >= maxEntries) {
        prune(now);
        if (temp.size >= maxEntries) {
          let first: BanEntry | undefined;
          for (const e of temp.values()) if (!first || e.expiresAt! < first.expiresAt!) first = e;
          temp.delete(first!.target);
        }
      }
      temp.set(c.target, { target: c.target, kind: c.kind, reason, source: "temporary", since: now, expiresAt });
      return true;
    },
    unban(idOrIp) {
      const c = classify(idOrIp);
      return c ? temp.delete(c.target) : false;
    },
    isBanned(idOrIp, now) {
      // Asked for every candidate at every fill: an empty list answers without parsing the target.
      if (temp.size === 0 && userIds.size === 0 && userIps.length === 0) return false;
      const c = classify(idOrIp);
      if (!c) return false;
      if (c.kind === "id" && userIds.has(c.target)) return true;
      if (c.ip && userBlock.check(c.ip, isIP(c.ip) === 6 ? "ipv6" : "ipv4")) return true;
      const e = temp.get(c.target);
      return e !== undefined && e.expiresAt! > now;
    },
    setUserEntries(bans) {
      userIds = new Set(bans.ids.map((x) => x.toLowerCase()));
      userIps = [...bans.ips];
      userBlock = new BlockList();
      for (const text of userIps) addToBlockList(userBlock, text);
    },
    list(now) {
      prune(now);
      const user: BanEntry[] = [
        ...[...userIds].map((target) => ({ target, kind: "id" as const, reason: BANS_FILE, source: "user" as const, since: null, expiresAt: null })),
        ...userIps.map((target) => ({ target, kind: "ip" as const, reason: BANS_FILE, source: "user" as const, since: null, expiresAt: null })),
      ];
      const temporary = [...temp.values()].sort((a, b) => a.expiresAt! - b.expiresAt!).map((e) => ({ ...e }));
      return [...user, ...temporary];
    },
    prune,
  };
}

function addToBlockList(block: BlockList, text: string): void {
  const [ip, prefix] = text.split("/");
  const family = isIP(ip!) === 6 ? "ipv6" : "ipv4";
  if (prefix === undefined) block.addAddress(ip!, family);
  else block.addSubnet(ip!, Number(prefix), family);
}

// ---- <home>/bans.json ----

/** Parses bans.json: `{ "ids": ["<64 hex node id>", ...], "ips": ["203.0.113.5", "2001:db8::/32", ...] }`.
 *  Both keys are optional; any other key or a bad entry is a ConfigError naming it. */
export function parseUserBans(text: string, source = BANS_FILE): UserBans {
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    throw new ConfigError(source, `is not valid JSON (${err instanceof Error ? err.message : String(err)})`);
  }
  if (typeof data !== "object" || data === null || Array.isArray(data)) {
    throw new ConfigError(source, 'must be a JSON object like { "ids": [...], "ips": [...] }');
  }
  for (const key of Object.keys(data)) {
    if (key !== "ids" && key !== "ips") throw new ConfigError(`${source} ${key}`, 'is not a known key (allowed: "ids", "ips")');
  }
  const obj = data as { ids?: unknown; ips?: unknown };
  const ids = stringList(obj.ids, `${source} ids`);
  const ips = stringList(obj.ips, `${source} ips`);
  ids.forEach((id, i) => {
    if (!isNodeId(id)) throw new ConfigError(`${source} ids[${i}]`, `${JSON.stringify(id)} is not a node id (64 hex digits)`);
  });
  ips.forEach((entry, i) => {
    const why = ipEntryProblem(entry);
    if (why) throw new ConfigError(`${source} ips[${i}]`, `${JSON.stringify(entry)} ${why}`);
  });
  // Plain addresses are normalized like the IPs they are checked against; ranges are kept as written.
  return { ids: ids.map((x) => x.toLowerCase()), ips: ips.map((x) => (x.includes("/") ? x : normalizeIp(x))) };
}

/** Reads <home>/bans.json; a missing file means no user entries. Throws ConfigError. */
export function loadUserBans(home: string): UserBans {
  const file = join(home, BANS_FILE);
  let size: number;
  try {
    size = statSync(file).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return { ids: [], ips: [] };
    throw new ConfigError(file, `cannot be read (${err instanceof Error ? err.message : String(err)})`);
  }
  if (size > MAX_BANS_FILE_BYTES) throw new ConfigError(file, `is ${size} bytes, limit is ${MAX_BANS_FILE_BYTES}`);
  let text: string;
  try {
    text = readFileSync(file, "utf8");
  } catch (err) {
    throw new ConfigError(file, `cannot be read (${err instanceof Error ? err.message : String(err)})`);
  }
  return parseUserBans(text, file);
}

function stringList(value: unknown, where: string): string[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new ConfigError(where, "must be a list of strings");
  value.forEach((v, i) => {
    if (typeof v !== "string") throw new ConfigError(`${where}[${i}]`, `must be a string, got ${JSON.stringify(v)}`);
  });
  return value as string[];
}

function ipEntryProblem(entry: string): string | null {
  const parts = entry.split("/");
  if (parts.length > 2) return "is not an IP or IP/prefix";
  const family = isIP(parts[0]!);
  if (family === 0) return "is not an IP address";
  if (parts.length === 2) {
    const max = family === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(parts[1]!) || Number(parts[1]) > max) return `has a prefix length out of range 0..${max}`;
  }
  return null;
}
