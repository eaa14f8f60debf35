// Which candidate the pool gives up when full, and the weighted draw of candidates for new links:
// pure choices over the pool's entries (candidate-pool.ts keeps the bookkeeping).

/** What the choices read of a pool entry. */
export interface Measured {
  readonly lastSeen: number;
  readonly rttMs: number | null;
  /** When it last refused our link as full. */
  readonly refusedFullAt?: number;
}

/** Eviction when full, over the held entries plus the newcomer: (0) the entry that refused our link as
 *  full most recently within `refusedMemoryMs` (full nodes fill a late node's pool otherwise: every
 *  candidate it holds refuses it, and the pool never makes room for one that would not); (1) the
 *  stalest entry if it has not been seen for half the TTL; (2) an entry never measured; (3) otherwise the fullest RTT band
 *  (regional / continental / intercontinental by default) gives up its slowest member. Taking from
 *  the fullest band keeps far nodes in the pool even when near ones are plentiful (seed: 避免地域
 *  明显分割); within a band lower latency wins. */
export function pickVictim<E extends Measured>(pool: E[], now: number, ttlMs: number, bands: readonly number[], refusedMemoryMs = 0): E {
  let refused: E | undefined;
  for (const e of pool) {
    if (e.refusedFullAt === undefined || now - e.refusedFullAt > refusedMemoryMs) continue;
    if (!refused || e.refusedFullAt > refused.refusedFullAt!) refused = e;
  }
  if (refused) return refused;
  let stalest = pool[0]!;
  for (const e of pool) if (e.lastSeen < stalest.lastSeen) stalest = e;
  if (now - stalest.lastSeen > ttlMs / 2) return stalest;
  const unmeasured = pool.filter((e) => e.rttMs === null);
  if (unmeasured.length) return unmeasured.reduce((a, b) => (b.lastSeen < a.lastSeen ? b : a));
  const groups = new Map<number, E[]>();
  for (const e of pool) {
    const band = bandOf(e.rttMs!, bands);
    const members = groups.get(band);
    if (members) members.push(e);
    else groups.set(band, [e]);
  }
  let fullest: E[] = [];
  let fullestBand = -1;
  for (const [band, members] of groups) {
    // Ties go to the farther band: near nodes are what we prefer to keep.
    if (members.length > fullest.length || (members.length === fullest.length && band > fullestBand)) {
      fullest = members;
      fullestBand = band;
    }
  }
  return fullest.reduce((a, b) => (b.rttMs! > a.rttMs! || (b.rttMs === a.rttMs && b.lastSeen < a.lastSeen) ? b : a));
}
function bandOf(rtt: number, bands: readonly number[]): number {
  let i = 0;
  while (i < bands.length && rtt >= bands[i]!) i++;
  return i;
}

/** Draws up to `n` items without replacement, each with probability proportional to its weight `w`. */
export function weightedDraw<T>(items: { e: T; w: number }[], n: number, rand: () => number): T[] {
  const left = [...items];
  const out: T[] = [];
  while (out.length < n && left.length) {
    const total = left.reduce((s, it) => s + it.w, 0);
    let r = rand() * total;
    let i = 0;
    while (i < left.length - 1 && r >= left[i]!.w) r -= left[i++]!.w;
    out.push(left[i]!.e);
    left.splice(i, 1);
  }
  return out;
}
