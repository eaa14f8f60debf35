// Keys of Findings nodes learned on first use (trust on first use, like ssh's known_hosts): one small JSON file
// under the app's home, "ip:port" → key. A later answer with another key is refused loudly until the entry is
// forgotten. The file is written whole (temporary file, then rename) with mode 0600.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ConfigError, PeerError } from "../errors.ts";

/** File name of the known-hosts file inside a home folder. */
export const KNOWN_HOSTS_FILE = "known_hosts.json";
/** Most entries kept (the oldest first-seen go first): the file stays small whatever an app dials. */
const MAX_KNOWN_HOSTS = 1024;
/** Largest file read, in bytes (about 1024 entries). */
const MAX_KNOWN_HOSTS_BYTES = 256 * 1024;

export interface KnownHost {
  /** X25519 public key, hex. */
  key: string;
  /** When the key was first learned, ISO time. */
  firstSeen: string;
}

/** A node answered with another key than the one learned before: refused until the entry is forgotten. */
export class KeyChangedError extends PeerError {
  constructor(
    readonly address: string,
    readonly knownKey: string,
    readonly newKey: string,
    file: string,
  ) {
    super(
      `The key of ${address} CHANGED: known ${knownKey.slice(0, 16)}… (in ${file}), now ${newKey.slice(0, 16)}…. ` +
        `Someone may be in the way, or the node got a new key. If you trust the new key: findings known-hosts --forget ${address}`,
    );
    this.name = "KeyChangedError";
  }
}

export interface KnownHosts {
  readonly file: string | undefined;
  get(address: string): KnownHost | undefined;
  /** Remembers a key learned now (refuses a different one for a known address: KeyChangedError). */
  remember(address: string, keyHex: string): void;
  /** Forgets an address; true when it was known. */
  forget(address: string): boolean;
  list(): Array<{ address: string } & KnownHost>;
}

/** The known hosts in `file` (created on the first remember), or in memory only when `file` is undefined. */
export function openKnownHosts(file: string | undefined): KnownHosts {
  const hosts = new Map<string, KnownHost>();
  if (file && existsSync(file)) {
    const text = readFileSync(file);
    if (text.length > MAX_KNOWN_HOSTS_BYTES) throw new ConfigError(file, `known-hosts file is larger than ${MAX_KNOWN_HOSTS_BYTES} bytes`);
    let parsed: unknown;
    try {
      parsed = JSON.parse(text.toString("utf8"));
    } catch (err) {
      throw new ConfigError(file, `known-hosts file is not JSON (${err instanceof Error ? err.message : String(err)}); fix or delete it`);
    }
    const entries = (parsed as { hosts?: unknown } | null)?.hosts;
    if (typeof entries !== "object" || entries === null) throw new ConfigError(file, 'known-hosts file must be {"hosts": {"ip:port": {"key": "<hex>", "firstSeen": "…"}}}');
    for (const [address, v] of Object.entries(entries)) {
      const e = v as Partial<KnownHost> | null;
      if (typeof e?.key === "string" && /^[0-9a-f]{64}$/.test(e.key)) hosts.set(address, { key: e.key, firstSeen: typeof e.firstSeen === "string" ? e.firstSeen : "" });
    }
  }
  const save = () => {
    if (!file) return;
    const tmp = `${file}.${process.pid}.tmp`;
    writeFileSync(tmp, JSON.stringify({ hosts: Object.fromEntries(hosts) }, null, 2) + "\n", { mode: 0o600 });
    renameSync(tmp, file);
  };
  return {
    file,
    get: (address) => hosts.get(address),
    remember(address, keyHex) {
      const known = hosts.get(address);
      if (known && known.key !== keyHex) throw new KeyChangedError(address, known.key, keyHex, file ?? "memory");
      if (known) return;
      while (hosts.size >= MAX_KNOWN_HOSTS) hosts.delete(hosts.keys().next().value!);
      hosts.set(address, { key: keyHex, firstSeen: new Date().toISOString() });
      save();
    },
    forget(address) {
      const had = hosts.delete(address);
      if (had) save();
      return had;
    },
    list: () => [...hosts].map(([address, h]) => ({ address, ...h })),
  };
}

/** The known-hosts file of a home folder. */
export function knownHostsFile(home: string): string {
  return join(home, KNOWN_HOSTS_FILE);
}
