// Pure planner for the NAT mapping lifetime test (STUN2 "生存期", DESIGN §6 "Mapping lifetime"; RFC 4787 §4.3).
//
// Each fresh socket makes one exchange with the server, which then sends exactly one probe to that socket's
// mapping after delay d (an inbound packet would refresh the mapping, so one probe per mapping). The probe
// arrives iff the mapping outlived d. All sockets of a round run in parallel, so a round costs its longest delay.
//   1. planLifetimeProbes: staggered delays (default 10…300 s), capped by max.
//   2. lifetimeBounds: lower = longest delay that succeeded, upper = shortest longer delay that failed (with the
//      threshold that fewest samples contradict, so one lost probe or an edge sample cannot spoil the bracket).
//   3. planRefinement: a few sockets splitting (lower, upper) evenly; repeat 2–3 until the interval is small.
//   4. finishLifetime: { seconds: midpoint, lowerBound, upperBound }.
// A failure below a success is taken as a lost probe (mappings do not come back to life) and counted.

import { LIFETIME_DELAYS_S, LIFETIME_MAX_S } from "./constants.ts";

/** Fresh sockets per refinement round between the last success and the first failure; 3 sockets cut the
 *  interval in 4 per round while staying cheap for the server. */
const LIFETIME_REFINE_SOCKETS = 3;
/** Refinement stops once upper − lower is at most this many seconds; NAT timers tick in whole seconds and
 *  conntrack's garbage collection adds about a second of jitter. */
const LIFETIME_RESOLUTION_S = 2;
/** Most refinement rounds after the first plan; each round costs about the upper bound in wall time. */
const LIFETIME_MAX_REFINE_ROUNDS = 3;

export interface LifetimePlanInit {
  /** Delays for the first round, in seconds. @default LIFETIME_DELAYS_S (10, 20, 30, 45, 60, 90, 120, 180, 300) */
  delaysS?: readonly number[];
  /** Longest delay tried, in seconds; longer delays are dropped and max itself is tried. @default 300 */
  maxS?: number;
  /** Sockets per refinement round. @default 3 */
  refineSockets?: number;
  /** Stop refining when upper − lower ≤ this, in seconds. @default 2 */
  resolutionS?: number;
  /** Refinement rounds after the first round. @default 3 */
  maxRefineRounds?: number;
}

/** One probed mapping: the delay after its exchange and whether the probe arrived. */
export interface LifetimeSample {
  delayS: number;
  ok: boolean;
}

export interface LifetimeBounds {
  /** The mapping lived at least this long (0 when no probe arrived). */
  lowerBound: number;
  /** The mapping was gone by then; null when every delay succeeded (lifetime ≥ lowerBound). */
  upperBound: number | null;
  /** Failures at or below lowerBound: lost probes, not expiry. */
  inconsistent: number;
}

/** The `lifetime` object of `findings probe --json` (DESIGN §6). */
export interface LifetimeEstimate {
  seconds: number;
  lowerBound: number;
  upperBound: number | null;
}

function positive(n: number, fallback: number): number {
  return Number.isFinite(n) && n > 0 ? n : fallback;
}

/** Step 1: sorted, de-duplicated delays in (0, max], with max appended when the list stops short of it. */
export function planLifetimeProbes(init: LifetimePlanInit = {}): number[] {
  const max = positive(init.maxS ?? LIFETIME_MAX_S, LIFETIME_MAX_S);
  const wanted = (init.delaysS ?? LIFETIME_DELAYS_S).filter((d) => Number.isFinite(d) && d > 0 && d <= max);
  const delays = [...new Set(wanted)].sort((a, b) => a - b);
  if (delays.length === 0 || delays[delays.length - 1]! < max) delays.push(max);
  return delays;
}

/**
 * Step 2: bounds from every sample so far (all rounds together). The threshold between "arrived" and "lost" is the
 * one that contradicts the fewest samples; on a tie the larger one wins, because a lost probe (a failure below a
 * success) is far likelier than a mapping coming back to life. Contradicting samples are counted as `inconsistent`:
 * lost probes, or probes that straddled the expiry instant within the timing noise (a success a few ms above a
 * failure at the very edge, seen in the namespace lab with server-measured ages).
 */
export function lifetimeBounds(samples: readonly LifetimeSample[]): LifetimeBounds {
  const sorted = [...samples].sort((a, b) => a.delayS - b.delayS);
  // Cut after i samples: those below are taken as "alive", those above as "expired".
  let failsBelow = 0;
  let oksAbove = sorted.filter((s) => s.ok).length;
  let bestCut = 0;
  let bestErrors = oksAbove;
  for (let i = 0; i < sorted.length; i++) {
    if (sorted[i]!.ok) oksAbove--;
    else failsBelow++;
    // Only cut between different delays.
    if (i + 1 < sorted.length && sorted[i + 1]!.delayS === sorted[i]!.delayS) continue;
    if (failsBelow + oksAbove <= bestErrors) {
      bestErrors = failsBelow + oksAbove;
      bestCut = i + 1;
    }
  }
  let lowerBound = 0;
  for (let i = 0; i < bestCut; i++) if (sorted[i]!.ok) lowerBound = Math.max(lowerBound, sorted[i]!.delayS);
  let upperBound: number | null = null;
  for (let i = bestCut; i < sorted.length; i++) if (!sorted[i]!.ok) upperBound = upperBound === null ? sorted[i]!.delayS : Math.min(upperBound, sorted[i]!.delayS);
  return { lowerBound, upperBound, inconsistent: bestErrors };
}

/**
 * Step 3: delays for the next round, evenly splitting (lower, upper), whole seconds, strictly inside. Empty when
 * done: no upper bound (lifetime ≥ the longest delay), the interval is within resolution, or `round` (1 for the
 * first refinement) exceeds maxRefineRounds.
 */
export function planRefinement(bounds: LifetimeBounds, round: number, init: LifetimePlanInit = {}): number[] {
  const { lowerBound: lo, upperBound: hi } = bounds;
  if (hi === null) return [];
  if (round > (init.maxRefineRounds ?? LIFETIME_MAX_REFINE_ROUNDS)) return [];
  if (hi - lo <= positive(init.resolutionS ?? LIFETIME_RESOLUTION_S, LIFETIME_RESOLUTION_S)) return [];
  const k = Math.max(1, Math.floor(positive(init.refineSockets ?? LIFETIME_REFINE_SOCKETS, LIFETIME_REFINE_SOCKETS)));
  const out = new Set<number>();
  for (let i = 1; i <= k; i++) {
    const d = Math.round(lo + ((hi - lo) * i) / (k + 1));
    if (d > lo && d < hi) out.add(d);
  }
  return [...out].sort((a, b) => a - b);
}

/** Step 4: the reported estimate; the midpoint when bounded, else the lower bound ("at least"). */
export function finishLifetime(bounds: LifetimeBounds): LifetimeEstimate {
  const { lowerBound, upperBound } = bounds;
  const seconds = upperBound === null ? lowerBound : (lowerBound + upperBound) / 2;
  return { seconds, lowerBound, upperBound };
}
