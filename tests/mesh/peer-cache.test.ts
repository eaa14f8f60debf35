// <home>/peers.json: round trip, expiry, limits, corrupt and tampered files (seed 001 §注意事项).
import { afterAll, describe, expect, test } from "bun:test";
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { DEFAULTS } from "../../src/config/defaults.ts";
import { MAX_PEER_CACHE_BYTES, type PeerCacheEntry, peerCachePath, readPeerCache, writePeerCache } from "../../src/mesh/peer-cache.ts";
import { buildRecord, recordNodeId } from "../../src/mesh/record.ts";

const NOW = 1_700_000_000_000;
const DAY = 24 * 3600_000;
const root = mkdtempSync(join(tmpdir(), "findings-peers-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const freshHome = () => mkdtempSync(join(root, `h${n++}-`));

function entry(lastSeen: number, seq = 1, key = generateNodeKey()): PeerCacheEntry {
  const record = buildRecord(key, { addresses: [{ ip: `203.0.113.${(n++ % 250) + 1}`, udpPort: 7788, tcpPort: 7788 }], spki: new Uint8Array(32), seq, now: NOW - DAY });
  return { record, lastSeen };
}

describe("peers.json", () => {
  test("entries written are read back with the same records and lastSeen", () => {
    const home = freshHome();
    const entries = [entry(NOW - 1000), entry(NOW - 2000)];
    expect(writePeerCache(home, entries, { now: NOW })).toBe(2);
    const read = readPeerCache(home, { now: NOW });
    expect(read.warning).toBeNull();
    expect(read.dropped).toBe(0);
    expect(read.entries.map((e) => [recordNodeId(e.record), e.lastSeen])).toEqual(entries.map((e) => [recordNodeId(e.record), e.lastSeen]));
    expect(read.entries[0]!.record.signature).toEqual(entries[0]!.record.signature);
  });

  test("the file is readable JSON with id and address next to the record, and no temp file is left", () => {
    const home = freshHome();
    const e = entry(NOW);
    writePeerCache(home, [e], { now: NOW });
    const data = JSON.parse(readFileSync(peerCachePath(home), "utf8"));
    expect(data.version).toBe(1);
    expect(data.peers[0].id).toBe(recordNodeId(e.record));
    expect(data.peers[0].address).toMatch(/^203\.0\.113\.\d+:7788\/7788$/);
    expect(readdirSync(home)).toEqual(["peers.json"]);
  });

  test("a missing file is an empty cache without a warning", () => {
    expect(readPeerCache(join(root, "absent"), { now: NOW })).toEqual({ entries: [], dropped: 0, warning: null });
  });

  test("entries older than the maximum age are dropped on write and on read", () => {
    const home = freshHome();
    const fresh = entry(NOW - DAY);
    const old = entry(NOW - DEFAULTS.peer_cache_days * 86_400_000 - 1);
    expect(writePeerCache(home, [fresh, old], { now: NOW })).toBe(1);
    const later = readPeerCache(home, { now: NOW + 2 * DAY, maxAgeMs: 2 * DAY });
    expect(later.entries).toEqual([]);
    expect(later.dropped).toBe(1);
  });

  test("a record past record_max_age_s is still read back: its address is worth asking after a long stop", () => {
    const home = freshHome();
    const e = entry(NOW - 1000);
    expect(writePeerCache(home, [e], { now: NOW })).toBe(1);
    const later = readPeerCache(home, { now: NOW + 3 * DAY });
    expect(later.entries.map((x) => recordNodeId(x.record))).toEqual([recordNodeId(e.record)]);
  });

  test("keeps the most recently seen entries up to the cap, one per node (highest seq, latest lastSeen)", () => {
    const home = freshHome();
    const key = generateNodeKey();
    const v1 = entry(NOW - 10, 1, key);
    const v2 = entry(NOW - 20, 2, key);
    const others = [entry(NOW - 30), entry(NOW - 40), entry(NOW - 50)];
    expect(writePeerCache(home, [v1, v2, ...others], { now: NOW, maxEntries: 3 })).toBe(3);
    const read = readPeerCache(home, { now: NOW });
    expect(read.entries.length).toBe(3);
    expect(read.entries[0]!.record.seq).toBe(2n);
    expect(read.entries.map((e) => e.lastSeen)).toEqual([NOW - 10, NOW - 30, NOW - 40]);
  });

  test("a corrupt file starts an empty cache with a warning instead of crashing", () => {
    const home = freshHome();
    writeFileSync(peerCachePath(home), "{ not json");
    const read = readPeerCache(home, { now: NOW });
    expect(read.entries).toEqual([]);
    expect(read.warning).toMatch(/peers\.json is corrupt/);
  });

  test("a file of another shape or version starts an empty cache with a warning", () => {
    const home = freshHome();
    for (const text of ["[]", "null", '{"version": 2, "peers": []}', '{"version": 1, "peers": {}}']) {
      writeFileSync(peerCachePath(home), text);
      const read = readPeerCache(home, { now: NOW });
      expect(read.entries).toEqual([]);
      expect(read.warning).toMatch(/not a version 1 peer cache/);
    }
  });

  test(`a file over ${MAX_PEER_CACHE_BYTES} bytes is not read`, () => {
    const home = freshHome();
    writeFileSync(peerCachePath(home), " ".repeat(MAX_PEER_CACHE_BYTES + 1));
    expect(readPeerCache(home, { now: NOW }).warning).toMatch(/over the limit/);
  });

  test("tampered, malformed or mislabelled entries are dropped and the rest kept", () => {
    const home = freshHome();
    const good = entry(NOW - 5);
    const victim = entry(NOW - 5);
    writePeerCache(home, [good, victim], { now: NOW });
    const data = JSON.parse(readFileSync(peerCachePath(home), "utf8"));
    const bytes = Buffer.from(data.peers[1].record, "base64");
    bytes[bytes.length - 1]! ^= 1; // last byte of the signature
    data.peers[1].record = bytes.toString("base64");
    data.peers.push({ record: "!!!not base64", lastSeen: NOW });
    data.peers.push({ record: data.peers[0].record, lastSeen: "yesterday" });
    data.peers.push({ id: "00".repeat(32), record: data.peers[0].record, lastSeen: NOW });
    data.peers.push(42);
    writeFileSync(peerCachePath(home), JSON.stringify(data));
    const read = readPeerCache(home, { now: NOW });
    expect(read.warning).toBeNull();
    expect(read.entries.map((e) => recordNodeId(e.record))).toEqual([recordNodeId(good.record)]);
    expect(read.dropped).toBe(5);
  });

  test("a lastSeen in the future is clamped to now so the entry still expires", () => {
    const home = freshHome();
    writePeerCache(home, [entry(NOW)], { now: NOW });
    const data = JSON.parse(readFileSync(peerCachePath(home), "utf8"));
    data.peers[0].lastSeen = NOW + 365 * DAY;
    writeFileSync(peerCachePath(home), JSON.stringify(data));
    expect(readPeerCache(home, { now: NOW }).entries[0]!.lastSeen).toBe(NOW);
  });

  test("a write into a missing folder throws and leaves no temp file behind", () => {
    const home = join(root, "missing-dir");
    expect(() => writePeerCache(home, [entry(NOW)], { now: NOW })).toThrow();
    expect(existsSync(home)).toBe(false);
  });
});
