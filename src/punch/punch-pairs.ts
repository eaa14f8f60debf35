// Memory of brokered pairs, for signalling coordination (seed 000 §信令协调: "if one side's NAT mapping
// changes, the node helps both reconnect"; DESIGN §7).
//
// The node notes every pair it brokered. When a member's address changes (app-pool.ts join → rejoined
// with addressChanged, or updateAddress → true), partnersOf() names the peers to re-broker with; the
// caller checks they are still in the pool and calls brokerPunch again. Bounded per node and by age.

/** How long the node remembers a brokered pair to re-broker it on a mapping change, in ms. */
const PUNCH_PAIR_TTL_MS = 30 * 60_000;
/** Most partners remembered per node (oldest forgotten first): bounds memory per member. */
const MAX_PUNCH_PARTNERS = 16;

export interface PunchPair {
  /** The partner's node id. */
  nodeId: string;
  /** The partner's kind at the time of the punch. */
  kind: string;
  at: number;
}

export interface PunchPairsInit {
  /** @default PUNCH_PAIR_TTL_MS (30 min) */
  ttlMs?: number;
  /** Partners remembered per node; the oldest is forgotten first. @default MAX_PUNCH_PARTNERS (16) */
  maxPartners?: number;
}

export interface PunchPairs {
  /** Records that a and b were brokered (both directions). */
  note(a: { nodeId: string; kind: string }, b: { nodeId: string; kind: string }, now: number): void;
  /** Partners of `nodeId` brokered within the TTL, newest first. */
  partnersOf(nodeId: string, now: number): PunchPair[];
  /** Forgets a node (it left for good) on both sides. */
  forget(nodeId: string): void;
  expire(now: number): void;
  /** Remembered (node → partner) entries; a pair counts twice unless one side's was evicted. */
  readonly size: number;
}

export function createPunchPairs(init: PunchPairsInit = {}): PunchPairs {
  const ttlMs = init.ttlMs ?? PUNCH_PAIR_TTL_MS;
  const maxPartners = init.maxPartners ?? MAX_PUNCH_PARTNERS;
  /** node id → partner id → pair (Map order = insertion; re-noting moves to the end). */
  const pairs = new Map<string, Map<string, PunchPair>>();

  function add(from: string, to: PunchPair): void {
    let m = pairs.get(from);
    if (!m) pairs.set(from, (m = new Map()));
    m.delete(to.nodeId);
    m.set(to.nodeId, to);
    while (m.size > maxPartners) m.delete(m.keys().next().value!);
  }

  return {
    note(a, b, now) {
      if (a.nodeId === b.nodeId) return;
      add(a.nodeId, { nodeId: b.nodeId, kind: b.kind, at: now });
      add(b.nodeId, { nodeId: a.nodeId, kind: a.kind, at: now });
    },
    partnersOf(nodeId, now) {
      return [...(pairs.get(nodeId)?.values() ?? [])].filter((p) => now - p.at <= ttlMs).reverse();
    },
    forget(nodeId) {
      for (const partner of pairs.get(nodeId)?.keys() ?? []) {
        const m = pairs.get(partner);
        m?.delete(nodeId);
        if (m && m.size === 0) pairs.delete(partner);
      }
      pairs.delete(nodeId);
    },
    expire(now) {
      for (const [id, m] of pairs) {
        for (const [pid, p] of m) if (now - p.at > ttlMs) m.delete(pid);
        if (m.size === 0) pairs.delete(id);
      }
    },
    get size() {
      let n = 0;
      for (const m of pairs.values()) n += m.size;
      return n;
    },
  };
}
