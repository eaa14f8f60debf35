// The one dial book of the mesh (seed 001 §候选池: 可连接性测试): every path that dials a node by its id
// (mesh dials to fill the pool, key checks of shared records) shares one cooldown and one failure
// count, and both "ask again later" loops (online help, pool refresh) share one back-off. Pure: the
// caller passes `now`.
import type { NodeRecord } from "../wire/index.ts";
import type { Rand } from "./candidate-pool.ts";

/** A candidate we failed to dial (unreachable, refused, full) is not dialled again for this long. */
export const DIAL_COOLDOWN_MS = 10_000;
/** Consecutive failed dials after which a candidate is dropped from the pool: a node that is down
 *  must not keep being shared (seed 001 §候选池: 可连接性测试). */
export const MAX_DIAL_FAILURES = 2;
/** Most cooldowns held (memory bound under a flood of shared records that do not answer). */
const MAX_COOLDOWNS = 10_000;

export interface DialBook {
  /** Dials in progress, by node id. */
  readonly dialing: ReadonlySet<string>;
  /** True while `id` is being dialled or cooling down. */
  blocked(id: string, now: number): boolean;
  cooling(id: string, now: number): boolean;
  /** Keeps `id` from being dialled for `ms` (@default the book's cooldown). */
  coolDown(id: string, now: number, ms?: number): void;
  begin(id: string): void;
  end(id: string): void;
  /** A link to `id` is up: its failure count starts over. */
  succeeded(id: string): void;
  /** A dial to `id` failed: cools it down; true when it failed often enough to drop the candidate. */
  failed(id: string, now: number): boolean;
  /** Forgets a candidate that left the pool. */
  forget(id: string): void;
  prune(now: number): void;
}

export function createDialBook(init: { cooldownMs?: number; maxFailures?: number } = {}): DialBook {
  const cooldownMs = init.cooldownMs ?? DIAL_COOLDOWN_MS;
  const maxFailures = init.maxFailures ?? MAX_DIAL_FAILURES;
  const dialing = new Set<string>();
  const until = new Map<string, number>();
  const failures = new Map<string, number>();
  const cooling = (id: string, now: number) => (until.get(id) ?? 0) > now;
  return {
    dialing,
    cooling,
    blocked: (id, now) => dialing.has(id) || cooling(id, now),
    coolDown(id, now, ms = cooldownMs) {
      if (until.size >= MAX_COOLDOWNS && !until.has(id)) until.clear();
      until.set(id, Math.max(until.get(id) ?? 0, now + ms));
    },
    begin: (id) => void dialing.add(id),
    end: (id) => void dialing.delete(id),
    succeeded: (id) => void failures.delete(id),
    failed(id, now) {
      this.coolDown(id, now);
      const n = (failures.get(id) ?? 0) + 1;
      if (n < maxFailures) {
        failures.set(id, n);
        return false;
      }
      failures.delete(id);
      return true;
    },
    forget(id) {
      until.delete(id);
      failures.delete(id);
    },
    prune(now) {
      for (const [id, t] of until) if (t <= now) until.delete(id);
    },
  };
}

/** Wait between rounds of asking for records: `baseMs` after a round that brought news, doubling
 *  after each that did not, up to `capMs` (a network smaller than the pool is asked once per cap,
 *  not every few seconds). */
export interface Backoff {
  readonly waitMs: number;
  /** Records the outcome of a round. */
  settle(broughtNews: boolean): void;
}

export function createBackoff(baseMs: number, capMs: number): Backoff {
  const cap = Math.max(baseMs, capMs);
  let waitMs = baseMs;
  return {
    get waitMs() {
      return waitMs;
    },
    settle(broughtNews) {
      waitMs = broughtNews ? baseMs : Math.min(cap, waitMs * 2);
    },
  };
}

/** Picks up to `want` candidates to dial: not linked, not dialling, not cooling, not banned. */
export function pickDials(
  pool: { ids(): string[]; pickForSwitch(n: number, rand: Rand, options?: { exclude?: Iterable<string> }): NodeRecord[] },
  dials: DialBook,
  want: number,
  now: number,
  rand: Rand,
  skip: (id: string) => boolean,
): NodeRecord[] {
  if (want <= 0) return [];
  // The book first: it is two lookups, and in a switch wave most candidates are cooling down.
  const exclude = pool.ids().filter((id) => dials.blocked(id, now) || skip(id));
  return pool.pickForSwitch(want, rand, { exclude });
}
