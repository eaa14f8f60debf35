// Candidate pool: records of public Findings nodes to switch mesh links to (seed 001 §候选池, DESIGN §5).
//
// Fed by peer sharing. A shared record is merged in three steps: the caller verifies it
// (record.ts), asks planMerge() which records need a reachability + key check (key-challenge.ts),
// and add()s those that pass. Pure bookkeeping: time comes in as `now` (ms), randomness as `rand`
// (a function returning [0, 1)), so tests are deterministic.
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import { BoundedMap } from "../contracts/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { netGroupOf, netPrefixOf } from "../rpc/index.ts";
import { provenAddress, recordNodeId } from "./record.ts";
import { addressKeys, netPrefixes, normalizeIp, provenOf, pushSample } from "./candidate-addresses.ts";
import { pickVictim, weightedDraw } from "./candidate-picks.ts";
export { addressKeys, dialAddress, netPrefixes, normalizeIp } from "./candidate-addresses.ts";

/** A candidate not seen (no link, no check, no share naming it) for this long is dropped. One hour:
 *  public nodes that are up get re-shared within minutes by the link switching. */
export const DEFAULT_CANDIDATE_TTL_MS = 60 * 60_000;
/** Reachability + key checks one merge may ask for: a peer sharing 100 fresh records must not make
 *  us dial 100 nodes at once (amplification). The rest come with later shares. */
const DEFAULT_MAX_CHECKS_PER_MERGE = 10;
/** Weight of the far third in pickForSwitch: the near end weighs ~1, the far third this floor, so
 *  roughly half the picks are near, a fifth far (seed: 低延迟优先，适当兼顾中高延迟节点). */
const FAR_PICK_WEIGHT = 1 / 3;

export type Rand = () => number;

export interface CandidatePoolInit {
  /** Our own node id: never a candidate. */
  selfId: string;
  /** Most candidates held (config `shortlist`). @default shortlist of defaults.toml */
  capacity?: number;
  /** A candidate not seen for this long is expired. @default DEFAULT_CANDIDATE_TTL_MS (1 h) */
  ttlMs?: number;
  /** Most checks one planMerge() asks for. @default DEFAULT_MAX_CHECKS_PER_MERGE (10) */
  maxChecksPerMerge?: number;
  /** RTT band edges in ms used to keep diversity on eviction. @default [50, 150] */
  rttBandsMs?: readonly number[];
  /** How long a record that failed its check is remembered, so it is not re-checked each time it is
   *  shared. @default 10 min */
  failedCooldownMs?: number;
  /** How long a candidate that refused our link as full goes first on eviction. @default 5 min */
  refusedFullMemoryMs?: number;
  /** Most candidates with an address in one IPv4 /24 or IPv6 /48 (config `candidates_per_prefix`), so one
   *  network with many keys cannot fill the pool. @default candidates_per_prefix of defaults.toml */
  perPrefix?: number;
}

export interface Candidate {
  readonly id: string;
  readonly record: NodeRecord;
  /** The record's addresses its key check proved (at least one): only these are dialled or counted as
   *  the node's. The record's other addresses are its word only. */
  readonly proven: readonly NodeAddress[];
  /** Median of the recent samples; null until measured. */
  readonly rttMs: number | null;
  readonly lastSeen: number;
  readonly addedAt: number;
}

export type MergeSkipReason = "self" | "banned" | "known" | "duplicate" | "failed-check" | "over-cap" | "crowded";

export interface MergePlan {
  /** New nodes, or known nodes whose key-relevant fields changed: check reachability + key, then add(). */
  check: NodeRecord[];
  /** Known nodes with a newer seq at the same proven address: add() without a check (the key was
   *  proven at this address already, and the signature binds the record to the key). */
  refresh: NodeRecord[];
  skipped: { id: string; reason: MergeSkipReason }[];
}

export interface MergeOptions {
  /** Ban predicate, called with node ids and with IPs (ban-list.ts: `x => bans.isBanned(x, now)`). */
  isBanned?: (idOrIp: string) => boolean;
}

/** "crowded": the record's network (/24, /48) already holds `perPrefix` candidates. */
export type AddOutcome = "added" | "updated" | "stale" | "self" | "full" | "crowded" | "unproven";

export interface AddResult {
  outcome: AddOutcome;
  /** Ids removed to make room or because the new record took over their address. */
  removed: string[];
}

export interface CandidatePool {
  readonly size: number;
  readonly capacity: number;
  has(id: string): boolean;
  get(id: string): Candidate | undefined;
  list(): Candidate[];
  /** Goes up whenever a candidate is added, updated or removed. */
  readonly version: number;
  /** Ids of the candidates whose record was issued before `issuedBeforeMs`. */
  issuedBefore(issuedBeforeMs: number): string[];
  /** Node ids of the candidates (no copies of their records). */
  ids(): string[];
  /** The network (netPrefixes) and network group (netGroupOf) of a candidate's proven address, if it has one. */
  netOf(id: string): { net: string; group: string } | undefined;
  /** How many candidates have a proven address in network `net` (netPrefixOf). */
  keysIn(net: string): number;
  /** The node id of the candidate whose proven address is `addressKey` (addressKeys()), if any. */
  holderOf(addressKey: string): string | undefined;
  planMerge(records: readonly NodeRecord[], now: number, options?: MergeOptions): MergePlan;
  /** Adds a verified and checked record; `rttMs` is the check's round trip when known, `proven` the
   *  addresses the check proved (without it: those proven for the node's older record that this one
   *  still lists, else the record's primary address). */
  add(record: NodeRecord, now: number, options?: { rttMs?: number; proven?: readonly NodeAddress[] }): AddResult;
  /** Remembers that a record failed its check (planMerge then skips it as "failed-check"). */
  noteCheckFailed(record: NodeRecord, now: number): void;
  sampleRtt(id: string, sample: { rttMs: number; now: number }): void;
  seen(id: string, now: number): void;
  /** The candidate refused our link because its incoming slots are full: while that is recent, it is
   *  the first to give up its place to a newcomer (pickVictim), since dialling it again gets the same
   *  answer until its peers switch away. A link it accepts (seen) clears the mark. */
  noteRefusedFull(id: string, now: number): void;
  remove(id: string): boolean;
  expire(now: number): string[];
  pickForSwitch(n: number, rand: Rand, options?: { exclude?: Iterable<string> }): NodeRecord[];
  share(n: number, excludeId: string | undefined, rand: Rand): NodeRecord[];
  byKind(kind: string): NodeRecord[];
}

interface Entry {
  id: string;
  record: NodeRecord;
  proven: NodeAddress[];
  /** Address keys of the proven addresses. */
  keys: string[];
  /** Address keys of every checkable address of the record when it was checked. */
  checked: string[];
  samples: number[];
  rttMs: number | null;
  lastSeen: number;
  addedAt: number;
  /** Number(record.issuedAtMs), read at every sweep. */
  issuedAt: number;
  /** When it last refused our link as full (cleared when it accepts one). */
  refusedFullAt?: number;
  /** netPrefixes(record)[0] and the group of that address, kept with the record. */
  net?: string;
  group?: string;
}

const DEFAULT_RTT_BANDS_MS = [50, 150];
const DEFAULT_FAILED_COOLDOWN_MS = 10 * 60_000;
/** How long a refusal as full counts against a candidate in eviction: about one switch interval, in
 *  which its peers switch some of their links away and free its slots. */
const DEFAULT_REFUSED_FULL_MEMORY_MS = 5 * 60_000;
/** Most remembered failed records (memory bound under a flood of bad shares). */
const MAX_FAILED_REMEMBERED = 1000;

export function createCandidatePool(init: CandidatePoolInit): CandidatePool {
  const capacity = init.capacity ?? DEFAULTS.shortlist;
  const ttlMs = init.ttlMs ?? DEFAULT_CANDIDATE_TTL_MS;
  const maxChecks = init.maxChecksPerMerge ?? DEFAULT_MAX_CHECKS_PER_MERGE;
  const bands = [...(init.rttBandsMs ?? DEFAULT_RTT_BANDS_MS)].sort((a, b) => a - b);
  const failedCooldownMs = init.failedCooldownMs ?? DEFAULT_FAILED_COOLDOWN_MS;
  const refusedMemoryMs = init.refusedFullMemoryMs ?? DEFAULT_REFUSED_FULL_MEMORY_MS;
  const perPrefix = init.perPrefix ?? DEFAULTS.candidates_per_prefix;
  const selfId = init.selfId.toLowerCase();
  const entries = new Map<string, Entry>();
  /** address key → node id */
  const byAddress = new Map<string, string>();
  /** failed record fingerprint → until (ms); age order is failure order, so expired ones sit first */
  const failed = new BoundedMap<string, number>(MAX_FAILED_REMEMBERED);
  /** network prefix → ids of the candidates with an address in it */
  const byNet = new Map<string, Set<string>>();

  function index(e: Entry): void {
    version++;
    // The network a node is dialled in: its first proven address (candidate-addresses.ts dialAddress).
    const proven = e.proven[0] ?? provenAddress(e.record);
    e.net = proven ? netPrefixOf(proven.ip) : undefined;
    e.group = proven ? netGroupOf(normalizeIp(proven.ip)) : undefined;
    for (const k of e.keys) byAddress.set(k, e.id);
    for (const n of netPrefixes(e.record, e.proven)) {
      const ids = byNet.get(n) ?? new Set<string>();
      ids.add(e.id);
      byNet.set(n, ids);
    }
  }
  function unindex(e: Entry): void {
    for (const k of e.keys) if (byAddress.get(k) === e.id) byAddress.delete(k);
    for (const n of netPrefixes(e.record, e.proven)) {
      const ids = byNet.get(n);
      ids?.delete(e.id);
      if (ids?.size === 0) byNet.delete(n);
    }
  }
  /** Whether a record of node `id` would make one of its networks hold more than `perPrefix` candidates
   *  (`extra` counts records planned in the same batch). */
  function crowded(id: string, rec: NodeRecord, extra?: Map<string, number>, proven?: readonly NodeAddress[]): boolean {
    // The node itself, and whoever holds one of its addresses now (it takes their place), do not count.
    const leaving = new Set([id, ...addressKeys(rec, proven).flatMap((k) => byAddress.get(k) ?? [])]);
    return netPrefixes(rec, proven).some((n) => {
      const ids = byNet.get(n);
      let held = 0;
      for (const x of ids ?? []) if (!leaving.has(x)) held++;
      return held + (extra?.get(n) ?? 0) >= perPrefix;
    });
  }
  let version = 0;
  function removeEntry(id: string): boolean {
    const e = entries.get(id);
    if (!e) return false;
    version++;
    unindex(e);
    entries.delete(id);
    return true;
  }
  function view(e: Entry): Candidate {
    return { id: e.id, record: e.record, proven: e.proven, rttMs: e.rttMs, lastSeen: e.lastSeen, addedAt: e.addedAt };
  }

  function pruneFailed(now: number): void {
    failed.dropOldestWhile((until) => until <= now);
  }

  const pool: CandidatePool = {
    get size() {
      return entries.size;
    },
    capacity,
    has: (id) => entries.has(id.toLowerCase()),
    get(id) {
      const e = entries.get(id.toLowerCase());
      return e && view(e);
    },
    list: () => [...entries.values()].map(view),
    holderOf: (k) => byAddress.get(k),
    keysIn: (net) => byNet.get(net)?.size ?? 0,
    get version() {
      return version;
    },
    issuedBefore(t) {
      // Called every sweep: one pass, no intermediate arrays.
      const out: string[] = [];
      for (const e of entries.values()) if (e.issuedAt < t) out.push(e.id);
      return out;
    },
    ids: () => [...entries.keys()],
    netOf: (id) => netOf(entries.get(id.toLowerCase())),

    planMerge(records, now, options = {}) {
      pruneFailed(now);
      const plan: MergePlan = { check: [], refresh: [], skipped: [] };
      // Within one batch keep the highest seq per node, then the first record per address.
      const best = new Map<string, NodeRecord>();
      const order: string[] = [];
      for (const rec of records) {
        const id = recordNodeId(rec);
        const prev = best.get(id);
        if (!prev) {
          best.set(id, rec);
          order.push(id);
        } else {
          plan.skipped.push({ id, reason: "duplicate" });
          if (rec.seq > prev.seq) best.set(id, rec);
        }
      }
      const batchAddresses = new Set<string>();
      const batchNets = new Map<string, number>();
      for (const id of order) {
        const rec = best.get(id)!;
        // Before its check a record is named by its primary address only: addresses it merely lists
        // must not make another newcomer a duplicate.
        const primary = provenAddress(rec);
        const keys = addressKeys(rec, primary ? [primary] : []);
        if (id === selfId) {
          plan.skipped.push({ id, reason: "self" });
          continue;
        }
        if (options.isBanned && (options.isBanned(id) || rec.addresses.some((a) => options.isBanned!(normalizeIp(a.ip))))) {
          plan.skipped.push({ id, reason: "banned" });
          continue;
        }
        if (failed.size && (failed.get(fingerprint(rec)) ?? 0) > now) {
          plan.skipped.push({ id, reason: "failed-check" });
          continue;
        }
        const known = entries.get(id);
        if (known && rec.seq <= known.record.seq) {
          plan.skipped.push({ id, reason: "known" });
          continue;
        }
        if (keys.some((k) => batchAddresses.has(k))) {
          plan.skipped.push({ id, reason: "duplicate" });
          continue;
        }
        if (crowded(id, rec, batchNets, primary ? [primary] : [])) {
          plan.skipped.push({ id, reason: "crowded" });
          continue;
        }
        for (const k of keys) batchAddresses.add(k);
        for (const n of netPrefixes(rec)) batchNets.set(n, (batchNets.get(n) ?? 0) + 1);
        // Same checkable addresses as when checked: the proofs still hold (a checker without IPv6 does not
        // re-check a dual-stack node at each re-sign).
        if (known && sameKeys(known.checked, addressKeys(rec))) {
          plan.refresh.push(rec);
          continue;
        }
        if (plan.check.length >= maxChecks) {
          plan.skipped.push({ id, reason: "over-cap" });
          continue;
        }
        plan.check.push(rec);
      }
      return plan;
    },

    add(record, now, options = {}) {
      const rttMs = options.rttMs;
      const id = recordNodeId(record);
      if (id === selfId) return { outcome: "self", removed: [] };
      const known = entries.get(id);
      if (known && record.seq <= known.record.seq) return { outcome: "stale", removed: [] };
      const checked = addressKeys(record);
      const proven = provenOf(record, options.proven, known);
      if (proven.length === 0) return { outcome: "unproven", removed: [] };
      const keys = addressKeys(record, proven);
      const removed: string[] = [];
      if (crowded(id, record, undefined, proven)) return { outcome: "crowded", removed };
      // The record was just checked at these addresses, so another node id still holding one of them
      // is out of date (e.g. the node restarted with a new key).
      for (const k of keys) {
        const other = byAddress.get(k);
        if (other !== undefined && other !== id && removeEntry(other)) removed.push(other);
      }
      if (known) {
        unindex(known);
        known.record = record;
        known.issuedAt = Number(record.issuedAtMs);
        known.proven = proven;
        known.keys = keys;
        known.checked = checked;
        known.lastSeen = Math.max(known.lastSeen, now);
        if (rttMs !== undefined) pushSample(known, rttMs);
        index(known);
        return { outcome: "updated", removed };
      }
      // Every field from the start: entries share one shape (fields added later would fork it).
      const entry: Entry = { id, record, proven, keys, checked, samples: [], rttMs: null, lastSeen: now, addedAt: now, issuedAt: Number(record.issuedAtMs), net: undefined, group: undefined, refusedFullAt: undefined };
      if (rttMs !== undefined) pushSample(entry, rttMs);
      if (entries.size >= capacity) {
        const victim = pickVictim([...entries.values(), entry], now, ttlMs, bands, refusedMemoryMs);
        if (victim === entry) return { outcome: "full", removed };
        removeEntry(victim.id);
        removed.push(victim.id);
      }
      entries.set(id, entry);
      index(entry);
      return { outcome: "added", removed };
    },

    noteCheckFailed(record, now) {
      pruneFailed(now);
      failed.setNewest(fingerprint(record), now + failedCooldownMs);
    },

    sampleRtt(id, { rttMs, now }) {
      const e = entries.get(id.toLowerCase());
      if (!e) return;
      pushSample(e, rttMs);
      e.lastSeen = Math.max(e.lastSeen, now);
    },

    seen(id, now) {
      const e = entries.get(id.toLowerCase());
      if (e) (e.lastSeen = Math.max(e.lastSeen, now)), (e.refusedFullAt = undefined);
    },

    noteRefusedFull(id, now) {
      const e = entries.get(id.toLowerCase());
      if (e) e.refusedFullAt = now;
    },

    remove: (id) => removeEntry(id.toLowerCase()),

    expire(now) {
      const gone: string[] = [];
      // Called every sweep: no copy of the pool (a Map's iterator stays valid across deletions).
      for (const e of entries.values()) {
        if (now - e.lastSeen > ttlMs) {
          removeEntry(e.id);
          gone.push(e.id);
        }
      }
      return gone;
    },

    /** Weighted draw without replacement, divided by the candidates held in the same network (/24, /48).
     *  Candidates are ranked by RTT; rank quantile q ∈ [0, 1]
     *  (nearest 0, farthest 1) gives weight max(1 − q, FAR_PICK_WEIGHT). So latency is preferred
     *  (seed: 低延迟优先) but the far third keeps a floor weight of 1/3 instead of sliding to 0, which
     *  for an even spread gives about 50 % near, 30 % middle, 20 % far picks (seed: 适当兼顾中高延迟
     *  节点). Ranks, not milliseconds, so one huge outlier does not squash everyone else and the same
     *  rule works on loopback and across continents. Unmeasured candidates count as the median. */
    pickForSwitch(n, rand, options = {}) {
      const exclude = new Set<string>();
      for (const x of options.exclude ?? []) exclude.add(x.toLowerCase());
      const pool = [...entries.values()].filter((e) => !exclude.has(e.id));
      const measured = pool.filter((e) => e.rttMs !== null).sort((a, b) => a.rttMs! - b.rttMs!);
      const q = new Map<Entry, number>();
      measured.forEach((e, i) => q.set(e, measured.length > 1 ? i / (measured.length - 1) : 0));
      // Each network weighs as one candidate, however many keys it holds: a few networks full of
      // hostile keys draw a few networks' share of our links, not their keys' share.
      const inNet = (e: Entry) => (e.net === undefined ? 1 : Math.max(1, byNet.get(e.net)?.size ?? 1));
      const items = pool.map((e) => ({ e, w: Math.max(1 - (q.get(e) ?? 0.5), FAR_PICK_WEIGHT) / inNet(e) }));
      return weightedDraw(items, n, rand).map((e) => e.record);
    },

    /** A uniform random sample for a new link (seed 001 §候选池: 获得对端的候选池节点数据分享). */
    share(n, excludeId, rand) {
      const skip = excludeId?.toLowerCase();
      const pool = [...entries.values()].filter((e) => e.id !== skip);
      const k = Math.min(n, pool.length);
      for (let i = 0; i < k; i++) {
        const j = i + Math.floor(rand() * (pool.length - i));
        [pool[i], pool[j]] = [pool[j]!, pool[i]!];
      }
      return pool.slice(0, k).map((e) => e.record);
    },

    /** Candidates that serve `kind`, nearest first (unmeasured last). */
    byKind(kind) {
      return [...entries.values()]
        .filter((e) => e.record.kinds.includes(kind))
        .sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
        .map((e) => e.record);
    },
  };
  return pool;
}

function netOf(e: Entry | undefined): { net: string; group: string } | undefined {
  return e?.net !== undefined && e.group !== undefined ? { net: e.net, group: e.group } : undefined;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  if (a.length !== b.length) return false;
  const set = new Set(a);
  return b.every((k) => set.has(k));
}

/** One record version: the node id plus its signature (which differs for any change of content). */
function fingerprint(rec: NodeRecord): string {
  const sig = rec.signature;
  return `${recordNodeId(rec)}:${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString("hex")}`;
}
