// Merging shared records into the candidate pool: verify → plan → reachability + key check → add, and punish liars (seed 001 §候选池, §公钥广播与验证; DESIGN §3, §5).
//
// 1. Every record must verify (syntax, signature by its own public key); one that does not means the
//    sharer forged or broke it, which it could have checked itself: the sharer is punished and
//    nothing it sent is merged. Records that are expired, from the future or of another format are
//    only left out (clocks differ; an old node is not a liar).
// 2. candidate-pool planMerge() says which records are new (check them) and which are newer
//    versions at proven addresses (add them at once).
// 3. Checks run a few at a time; the same record shared by several peers is checked once. A failed
//    key check is evidence against the named node's record only, never against who relayed it: a
//    relay cannot run our check for us (the named node sees who challenges it and may answer each
//    checker differently), and an honest relay's copy may just be stale (the node moved or
//    re-keyed). That record version is not merged nor re-checked for a while, and the named node
//    cools down like an unreachable one. Whoever introduced records that failed their key check
//    MAX_FAILED_INTRODUCTIONS times within FAILED_INTRODUCTIONS_WINDOW_MS has its new records left
//    unchecked until the window passes (no ban, its link and record stay): it cannot make us dial
//    address after address named by records that do not hold.
// 4. A checked record is added only if at least one sharer is still in good standing (or it came
//    from our own cache): a liar's other records are not merged.
import { BoundedMap } from "../contracts/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import type { BanList } from "./ban-list.ts";
import type { CandidatePool } from "./candidate-pool.ts";
import { createDialBook, type DialBook } from "./dialer.ts";
import type { RecordCheckResult } from "./record-check.ts";
import { isRelayBlameless, recordNodeId, verifyRecord } from "./record.ts";

/** Key checks run at once: a burst of shares must not make us open dozens of TLS links. */
const MAX_CONCURRENT_KEY_CHECKS = 4;
/** Failed key checks of records one sharer introduced, within the window, after which its new
 *  records are not checked until the window passes. An honest relay meets this only if it relays
 *  several stale or selectively answered records within minutes. */
const MAX_FAILED_INTRODUCTIONS = 3;
const FAILED_INTRODUCTIONS_WINDOW_MS = 10 * 60_000;
/** New records checked per minute while the pool is full and the node lacks no link: such a check
 *  can only swap a candidate for a nearer one, and every check is a request its node must answer. A
 *  network with churn shares many newcomers; without a budget every node checks each one it hears
 *  of. Bursts of IMPROVEMENT_CHECKS_BURST. */
const IMPROVEMENT_CHECKS_PER_MIN = 6;
const IMPROVEMENT_CHECKS_BURST = 10;
/** Sharers whose failures are remembered (memory bound). */
const MAX_SHARERS_REMEMBERED = 1000;

/** Who gave us records: a mesh peer (id and service IP), a helper we dialled (IP), or null for our
 *  own peer cache. */
export interface Sharer {
  label: string;
  id?: string | null;
  ip?: string | null;
}

export interface RecordMergerComponents {
  pool: CandidatePool;
  bans: BanList;
  /** Reachability + key check of one record (record-check.ts checkRecord). */
  check(rec: NodeRecord): Promise<RecordCheckResult>;
  /** Bans a sharer and drops what it holds; called once per lie. */
  punish(sharer: Sharer, why: string): void;
  now(): number;
  /** Oldest record accepted, in ms (config record_max_age_s). @default the embedded default */
  maxAgeMs?: number;
  /** The node's dial book: a record whose node did not answer is not checked again while it cools
   *  down (the same cooldown as mesh dials). @default a book of its own */
  dials?: Pick<DialBook, "cooling" | "coolDown">;
  /** @default MAX_CONCURRENT_KEY_CHECKS */
  maxConcurrentChecks?: number;
  /** True while new records can only improve the pool (it is full and the node lacks no link): their
   *  checks then come out of a budget of IMPROVEMENT_CHECKS_PER_MIN. @default never */
  improvingOnly?: () => boolean;
}

export interface MergeCounters {
  recordsReceived: number;
  recordsRefreshed: number;
  checksOk: number;
  checksKeyFailed: number;
  checksUnreachable: number;
  recordsAdded: number;
  badRecords: number;
  /** New records of sharers over MAX_FAILED_INTRODUCTIONS, left unchecked. */
  checksThrottled: number;
  /** New records left unchecked because the improvement budget was spent. */
  checksDeferred: number;
  /** Checks settled by a helper's proof instead of a key check (also counted as ok or key-failed). */
  checksByProof: number;
}

export interface RecordMerger {
  /** Steps 1–4; resolves when the checks this batch started are done. Never throws. `checked`: one of
   *  the records whose key check is already done (a helper's proof of its own record, helper-proof.ts):
   *  its result stands for the check, which then costs no request and takes no budget. */
  merge(records: readonly NodeRecord[], sharer: Sharer | null, checked?: PreChecked | null): Promise<void>;
  readonly counters: MergeCounters;
  /** Checks running or queued. */
  readonly pending: number;
}

/** A record with the result of a check already made. */
export interface PreChecked {
  record: NodeRecord;
  result: RecordCheckResult;
}

interface InFlight {
  sharers: Sharer[];
  fromCache: boolean;
  done: Promise<void>;
}

export function createRecordMerger(c: RecordMergerComponents): RecordMerger {
  const maxChecks = c.maxConcurrentChecks ?? MAX_CONCURRENT_KEY_CHECKS;
  const counters: MergeCounters = { recordsReceived: 0, recordsRefreshed: 0, checksOk: 0, checksKeyFailed: 0, checksUnreachable: 0, recordsAdded: 0, badRecords: 0, checksThrottled: 0, checksDeferred: 0, checksByProof: 0 };
  let budget = IMPROVEMENT_CHECKS_BURST;
  let budgetAt = c.now();
  const takeImprovementCheck = (now: number) => {
    budget = Math.min(IMPROVEMENT_CHECKS_BURST, budget + ((now - budgetAt) * IMPROVEMENT_CHECKS_PER_MIN) / 60_000);
    budgetAt = now;
    if (budget < 1) return false;
    budget--;
    return true;
  };
  /** sharer (id, else IP) → times of its failed introductions within the window; the first remembered goes first */
  const failedIntroductions = new BoundedMap<string, number[]>(MAX_SHARERS_REMEMBERED);
  const inFlight = new Map<string, InFlight>();
  const dials = c.dials ?? createDialBook();
  let running = 0;
  const queue: (() => void)[] = [];

  const sharerKey = (s: Sharer) => s.id ?? s.ip ?? s.label;
  const recentFailures = (s: Sharer, now: number) => {
    const key = sharerKey(s);
    const times = (failedIntroductions.get(key) ?? []).filter((t) => now - t < FAILED_INTRODUCTIONS_WINDOW_MS);
    if (times.length) failedIntroductions.set(key, times);
    else failedIntroductions.delete(key);
    return times.length;
  };
  const noteFailedIntroduction = (s: Sharer, now: number) => {
    const key = sharerKey(s);
    failedIntroductions.set(key, [...(failedIntroductions.get(key) ?? []), now].slice(-MAX_FAILED_INTRODUCTIONS));
  };
  const banned = (s: Sharer, now: number) => (s.id ? c.bans.isBanned(s.id, now) : false) || (s.ip ? c.bans.isBanned(s.ip, now) : false);

  async function slot<T>(fn: () => Promise<T>): Promise<T> {
    if (running >= maxChecks) await new Promise<void>((r) => queue.push(r));
    running++;
    try {
      return await fn();
    } finally {
      running--;
      queue.shift()?.();
    }
  }

  function checkShared(rec: NodeRecord, sharer: Sharer | null, done?: RecordCheckResult): Promise<void> {
    const key = fingerprint(rec);
    const existing = inFlight.get(key);
    if (existing) {
      if (sharer) existing.sharers.push(sharer);
      else existing.fromCache = true;
      return existing.done;
    }
    const entry: InFlight = { sharers: sharer ? [sharer] : [], fromCache: sharer === null, done: Promise.resolve() };
    // A check already made takes no slot: it sends nothing.
    const run = (fn: () => Promise<void>) => (done ? fn() : slot(fn));
    entry.done = run(async () => {
      if (done) counters.checksByProof++;
      const result = done ?? (await c.check(rec));
      const now = c.now();
      if (result.ok) {
        counters.checksOk++;
        const vouched = entry.fromCache || entry.sharers.some((s) => !banned(s, now));
        if (vouched && !c.bans.isBanned(recordNodeId(rec), now)) {
          const added = c.pool.add(rec, now, { rttMs: result.rttMs, proven: result.proven });
          if (added.outcome === "added" || added.outcome === "updated") counters.recordsAdded++;
        }
      } else if (result.kind === "key-mismatch") {
        counters.checksKeyFailed++;
        c.pool.noteCheckFailed(rec, now);
        dials.coolDown(recordNodeId(rec), now);
        for (const s of entry.sharers) noteFailedIntroduction(s, now);
      } else {
        counters.checksUnreachable++;
        dials.coolDown(recordNodeId(rec), now);
      }
    }).finally(() => inFlight.delete(key));
    inFlight.set(key, entry);
    return entry.done;
  }

  return {
    counters,
    get pending() {
      return inFlight.size;
    },
    async merge(records, sharer, checked) {
      const now = c.now();
      counters.recordsReceived += records.length;
      if (sharer && banned(sharer, now)) return;
      const valid: NodeRecord[] = [];
      for (const rec of records) {
        const check = verifyRecord(rec, now, { maxAgeMs: c.maxAgeMs });
        if (check.ok) valid.push(rec);
        else if (!isRelayBlameless(check.reason)) {
          counters.badRecords++;
          if (sharer) c.punish(sharer, `shared a bad record: ${check.reason}`);
          return;
        }
      }
      const plan = c.pool.planMerge(valid, now, { isBanned: (x) => c.bans.isBanned(x, now) });
      for (const rec of plan.refresh) {
        counters.recordsRefreshed++;
        c.pool.add(rec, now);
      }
      // A record already checked costs nothing more: neither cooldowns, throttles nor the budget hold it back.
      const pre = checked ? plan.check.find((rec) => rec === checked.record) : undefined;
      const rest = pre ? plan.check.filter((rec) => rec !== pre) : plan.check;
      // A node that did not answer a check or a dial lately is not checked again yet.
      let toCheck = rest.filter((rec) => !dials.cooling(recordNodeId(rec), now));
      if (sharer && toCheck.length && recentFailures(sharer, now) >= MAX_FAILED_INTRODUCTIONS) {
        counters.checksThrottled += toCheck.length;
        toCheck = [];
      }
      if (toCheck.length && c.improvingOnly?.()) {
        // Updates of held candidates are not improvements: they keep what we hold true.
        toCheck = toCheck.filter((rec) => {
          if (c.pool.has(recordNodeId(rec)) || inFlight.has(fingerprint(rec)) || takeImprovementCheck(now)) return true;
          counters.checksDeferred++;
          return false;
        });
      }
      await Promise.all([...(pre ? [checkShared(pre, sharer, checked!.result)] : []), ...toCheck.map((rec) => checkShared(rec, sharer))]);
    },
  };
}

/** One record version: node id plus the start of its signature. */
function fingerprint(rec: NodeRecord): string {
  const sig = rec.signature.subarray(0, 16);
  return `${recordNodeId(rec)}:${Buffer.from(sig.buffer, sig.byteOffset, sig.byteLength).toString("hex")}`;
}
