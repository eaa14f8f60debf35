// <home>/peers.json: node records kept between runs for history-based discovery, with expiry (DESIGN §5, seed 001 §注意事项: 可以本地暂存…但不应长期保存).
//
// File shape (version 1):
//   { "version": 1, "savedAt": <ms>, "peers": [ { "id", "address", "lastSeen", "record": "<base64 NodeRecord>" } ] }
// The record is stored as its exact wire bytes so its signature is re-verified on load; "id" and
// "address" are only there for people reading the file. A damaged file never stops the node: it
// starts with an empty cache and a warning.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from "node:fs";
import { join } from "node:path";
import { randomBytes } from "node:crypto";
import type { NodeRecord } from "../wire/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { sharedRecordBytes } from "./record-bytes.ts";
import { MAX_RECORD_BYTES, parseRecord, recordAddress, recordNodeId } from "./record.ts";

const DAY_MS = 86_400_000;
const PEERS_FILE = "peers.json";
/** Most entries kept in peers.json. */
const MAX_PEER_CACHE_ENTRIES = 1000;
/** Largest peers.json read: 1000 records as base64 JSON is ~600 KB. */
export const MAX_PEER_CACHE_BYTES = 2 * 1024 * 1024;

export interface PeerCacheEntry {
  record: NodeRecord;
  /** When the node was last seen alive (ms). */
  lastSeen: number;
}

export interface PeerCacheOptions {
  /** Current time, ms. */
  now: number;
  /** Entries last seen longer ago are dropped (config `peer_cache_days`). @default peer_cache_days of defaults.toml */
  maxAgeMs?: number;
  /** @default MAX_PEER_CACHE_ENTRIES */
  maxEntries?: number;
}

export interface PeerCacheRead {
  entries: PeerCacheEntry[];
  /** Entries left out: expired, unverifiable or duplicate. */
  dropped: number;
  /** Set when the file could not be used at all (the cache then starts empty). */
  warning: string | null;
}

const FILE_VERSION = 1;
/** Base64 of the largest record, with padding. */
const MAX_RECORD_BASE64_CHARS = Math.ceil(MAX_RECORD_BYTES / 3) * 4;
const BASE64_PATTERN = /^[A-Za-z0-9+/]*={0,2}$/;

export function peerCachePath(home: string): string {
  return join(home, PEERS_FILE);
}

/** Reads <home>/peers.json. Never throws: a missing file is an empty cache, a damaged one an empty
 *  cache with a warning. Entries are re-verified (signature, sizes, time) and expired by lastSeen. */
export function readPeerCache(home: string, options: PeerCacheOptions): PeerCacheRead {
  const now = options.now;
  const file = peerCachePath(home);
  const empty = (warning: string | null): PeerCacheRead => ({ entries: [], dropped: 0, warning });
  let text: string;
  try {
    const size = statSync(file).size;
    if (size > MAX_PEER_CACHE_BYTES) return empty(`${file} is ${size} bytes, over the limit of ${MAX_PEER_CACHE_BYTES}; starting with no cached peers`);
    text = readFileSync(file, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return empty(null);
    return empty(`${file} cannot be read (${err instanceof Error ? err.message : String(err)}); starting with no cached peers`);
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (err) {
    return empty(`${file} is corrupt (${err instanceof Error ? err.message : String(err)}); starting with no cached peers`);
  }
  const obj = data as { version?: unknown; peers?: unknown } | null;
  if (typeof obj !== "object" || obj === null || obj.version !== FILE_VERSION || !Array.isArray(obj.peers)) {
    return empty(`${file} is not a version ${FILE_VERSION} peer cache; starting with no cached peers`);
  }
  return { ...pickEntries(obj.peers, options), warning: null };
}

function pickEntries(raw: unknown[], options: PeerCacheOptions): { entries: PeerCacheEntry[]; dropped: number } {
  const now = options.now;
  const maxAge = options.maxAgeMs ?? DEFAULTS.peer_cache_days * DAY_MS;
  const maxEntries = options.maxEntries ?? MAX_PEER_CACHE_ENTRIES;
  const byId = new Map<string, PeerCacheEntry>();
  let dropped = 0;
  for (const item of raw) {
    const entry = parseEntry(item, now);
    if (!entry || now - entry.lastSeen > maxAge) {
      dropped++;
      continue;
    }
    if (keepNewest(byId, entry)) dropped++;
  }
  const entries = [...byId.values()].sort((a, b) => b.lastSeen - a.lastSeen);
  dropped += Math.max(0, entries.length - maxEntries);
  return { entries: entries.slice(0, maxEntries), dropped };
}

/** One entry per node: the highest seq's record with the latest lastSeen of both. True when `e`
 *  was a duplicate. */
function keepNewest(byId: Map<string, PeerCacheEntry>, e: PeerCacheEntry): boolean {
  const id = recordNodeId(e.record);
  const prev = byId.get(id);
  if (!prev) {
    byId.set(id, { record: e.record, lastSeen: e.lastSeen });
    return false;
  }
  byId.set(id, { record: e.record.seq > prev.record.seq ? e.record : prev.record, lastSeen: Math.max(prev.lastSeen, e.lastSeen) });
  return true;
}

function parseEntry(item: unknown, now: number): PeerCacheEntry | null {
  if (typeof item !== "object" || item === null) return null;
  const { record, lastSeen, id } = item as { record?: unknown; lastSeen?: unknown; id?: unknown };
  if (typeof record !== "string" || record.length > MAX_RECORD_BASE64_CHARS || !BASE64_PATTERN.test(record)) return null;
  if (typeof lastSeen !== "number" || !Number.isFinite(lastSeen) || lastSeen < 0) return null;
  // No age limit here: the cache lasts peer_cache_days, and an expired record still tells where a
  // node was (an address to ask for help); the merge refuses it as a candidate.
  const parsed = parseRecord(new Uint8Array(Buffer.from(record, "base64")), now, { maxAgeMs: Infinity });
  if (!parsed.ok) return null;
  // A hand-edited id that disagrees with the record means the file is not what it claims.
  if (id !== undefined && id !== recordNodeId(parsed.record)) return null;
  // A lastSeen in the future (clock changed) would keep an entry forever: clamp it.
  return { record: parsed.record, lastSeen: Math.min(lastSeen, now) };
}

/** Writes <home>/peers.json atomically (temp file in the same folder, fsync, rename), dropping
 *  expired entries and keeping the most recently seen ones. Returns how many were written; throws
 *  the file system's error when the folder is not writable. */
export function writePeerCache(home: string, entries: readonly PeerCacheEntry[], options: PeerCacheOptions): number {
  const now = options.now;
  const maxAge = options.maxAgeMs ?? DEFAULTS.peer_cache_days * DAY_MS;
  const maxEntries = options.maxEntries ?? MAX_PEER_CACHE_ENTRIES;
  const byId = new Map<string, PeerCacheEntry>();
  for (const e of entries) {
    if (now - e.lastSeen <= maxAge) keepNewest(byId, e);
  }
  const keep = [...byId.values()].sort((a, b) => b.lastSeen - a.lastSeen).slice(0, maxEntries);
  const body = {
    version: FILE_VERSION,
    savedAt: now,
    peers: keep.map((e) => ({
      id: recordNodeId(e.record),
      address: recordAddress(e.record),
      lastSeen: Math.min(e.lastSeen, now),
      record: Buffer.from(sharedRecordBytes(e.record)).toString("base64"),
    })),
  };
  const file = peerCachePath(home);
  const tmp = `${file}.${process.pid}.${randomBytes(4).toString("hex")}.tmp`;
  const fd = openSync(tmp, "wx", 0o644);
  try {
    writeSync(fd, JSON.stringify(body, null, 1) + "\n");
    // fsync before rename: after a crash the file is the old one or the new one, never half of one.
    fsyncSync(fd);
    closeSync(fd);
    renameSync(tmp, file);
  } catch (err) {
    try {
      closeSync(fd);
    } catch {
      // already closed
    }
    try {
      unlinkSync(tmp);
    } catch {
      // nothing to clean up
    }
    throw err;
  }
  return keep.length;
}
