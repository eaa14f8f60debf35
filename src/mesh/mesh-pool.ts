// Mesh pool: bookkeeping of live WSS links to Findings nodes, limits and link switching (seed 001 §组网池, §候选池; DESIGN §5).
//
// Pure: the node reports links as they open and close and asks planSwitch(now, rand) on its timer;
// the pool says which outgoing links to drop and how many to dial (from candidate-pool.ts picks).
import { DEFAULTS } from "../config/index.ts";
import type { Rand } from "./candidate-pool.ts";

/** ± share of the interval drawn at random, so nodes started together do not switch in lockstep. */
export const SWITCH_JITTER = 0.2;

export type LinkDirection = "in" | "out";

export interface MeshLink {
  /** The peer's node id (one link per peer). */
  readonly id: string;
  readonly direction: LinkDirection;
  readonly openedAt: number;
  readonly rttMs: number | null;
  /** The peer's network (IPv4 /24, IPv6 /48; netPrefixOf), for the diversity limit. */
  readonly prefix?: string;
  /** The peer's network group (IPv4 /16, IPv6 /32; netGroupOf), for the wider diversity limit. */
  readonly group?: string;
}

export interface MeshPoolInit {
  /** Outgoing links kept (config `mesh_out`). @default mesh_out of defaults.toml */
  maxOut?: number;
  /** Incoming links accepted (config `mesh_in`). @default mesh_in of defaults.toml */
  maxIn?: number;
  /** Time between switches (config `mesh_switch_s` × 1000). @default mesh_switch_s of defaults.toml */
  switchIntervalMs?: number;
  /** Most links in one direction to peers of one network (config `mesh_per_prefix`); also the most
   *  outgoing links into one network group (/16, /32), and half the most incoming ones from one.
   *  @default mesh_per_prefix of defaults.toml */
  perPrefix?: number;
  /** Whether a network (/24, /48) holds the keys of several nodes as far as we know (the candidate
   *  pool's count; two of our links into it count too). The links into all such networks count as
   *  one network group: keys rented in a few /24s of as many /16s weigh as one provider, not as many.
   *  @default none known beyond our links */
  sharedNet?: (prefix: string) => boolean;
  /** Start of the first interval, ms. @default 0 (first switch one interval after time 0) */
  now?: number;
}

/** "crowded": the direction already holds `perPrefix` links to the peer's network, or its share of
 *  links to the peer's network group or, for a network of several keys, to such networks (groupLimit). */
export type AddLinkOutcome = "added" | "full" | "duplicate" | "crowded";

export interface SwitchPlan {
  /** Outgoing links to close (0–2). */
  drop: string[];
  /** How many new outgoing links to dial: the dropped ones plus any deficit. */
  dial: number;
}

export interface MeshPool {
  readonly maxOut: number;
  readonly maxIn: number;
  readonly size: number;
  readonly nextSwitchAt: number;
  canAccept(direction: LinkDirection): boolean;
  has(id: string): boolean;
  get(id: string): MeshLink | undefined;
  list(direction?: LinkDirection): MeshLink[];
  add(link: { id: string; direction: LinkDirection; openedAt: number; rttMs?: number; prefix?: string; group?: string }): AddLinkOutcome;
  /** Whether one more link in `direction` to network `prefix` (and network group `group`) is within
   *  the diversity limits. */
  hasRoomFor(direction: LinkDirection, prefix: string, group?: string): boolean;
  remove(id: string): boolean;
  /** Links over the limit of links into networks of several keys (the count may have grown since
   *  they opened), youngest first: the oldest links are kept. */
  overShared(): string[];
  setRtt(id: string, rttMs: number): void;
  /** Outgoing links missing to reach maxOut: dial this many to replace lost links. */
  deficit(): number;
  /** null before the switch time; otherwise the plan, and the next switch time is drawn.
   *  `candidates` = how many candidates could be dialled now (not already linked); nothing is
   *  dropped when there is nothing to switch to. */
  planSwitch(now: number, rand: Rand, options?: { candidates?: number }): SwitchPlan | null;
}

export function createMeshPool(init: MeshPoolInit = {}): MeshPool {
  const maxOut = init.maxOut ?? DEFAULTS.mesh_out;
  const maxIn = init.maxIn ?? DEFAULTS.mesh_in;
  const interval = init.switchIntervalMs ?? DEFAULTS.mesh_switch_s * 1000;
  const perPrefix = init.perPrefix ?? DEFAULTS.mesh_per_prefix;
  const links = new Map<string, { id: string; direction: LinkDirection; openedAt: number; rttMs: number | null; prefix?: string; group?: string }>();
  let nextSwitchAt = (init.now ?? 0) + interval;

  // Counts kept as links come and go: fill() asks whether each candidate's network has room, so a
  // pass over the links per question would cost links × candidates per fill.
  const byDirection = { in: 0, out: 0 };
  const byNet = { in: new Map<string, number>(), out: new Map<string, number>() };
  const byGroup = { in: new Map<string, number>(), out: new Map<string, number>() };
  /** Links into each network, both directions. */
  const byNetBoth = new Map<string, number>();
  const tally = (m: Map<string, number>, k: string | undefined, by: number) => {
    if (k === undefined) return;
    const n = (m.get(k) ?? 0) + by;
    if (n > 0) m.set(k, n);
    else m.delete(k);
  };
  const counted = (l: { direction: LinkDirection; prefix?: string; group?: string }, by: 1 | -1) => {
    byDirection[l.direction] += by;
    tally(byNet[l.direction], l.prefix, by);
    tally(byGroup[l.direction], l.group, by);
    tally(byNetBoth, l.prefix, by);
  };
  const count = (d: LinkDirection) => byDirection[d];
  const inPrefix = (d: LinkDirection, prefix: string) => byNet[d].get(prefix) ?? 0;
  const inGroup = (d: LinkDirection, group: string) => byGroup[d].get(group) ?? 0;
  const limit = (d: LinkDirection) => (d === "out" ? maxOut : maxIn);
  /** Outgoing links are our choice: as many per /16 as per /24, so keys bought in a few neighbouring
   *  /24s of one provider cannot take them all. Incoming ones come to us: twice that. */
  const groupLimit = (d: LinkDirection) => (d === "out" ? perPrefix : 2 * perPrefix);
  const sharedNet = init.sharedNet ?? (() => false);
  /** Whether `prefix` holds several keys: by the caller's count, or our links into it (plus `extra`). */
  const shared = (prefix: string, extra = 0) => {
    if (sharedNet(prefix)) return true;
    const n = byNetBoth.get(prefix) ?? 0;
    return n > 0 && n + extra >= 2;
  };
  /** Links in direction `d` into networks of several keys, counting `prefix` as one of them. */
  const inShared = (d: LinkDirection, prefix: string) => {
    let n = 0;
    for (const l of links.values()) if (l.direction === d && l.prefix !== undefined && (l.prefix === prefix || shared(l.prefix))) n++;
    return n;
  };
  const crowded = (d: LinkDirection, prefix?: string, group?: string) =>
    (prefix !== undefined && inPrefix(d, prefix) >= perPrefix) ||
    (group !== undefined && inGroup(d, group) >= groupLimit(d)) ||
    (prefix !== undefined && shared(prefix, 1) && inShared(d, prefix) >= groupLimit(d));
  const view = (l: MeshLink): MeshLink => ({ ...l });

  return {
    maxOut,
    maxIn,
    get size() {
      return links.size;
    },
    get nextSwitchAt() {
      return nextSwitchAt;
    },
    canAccept: (d) => count(d) < limit(d),
    has: (id) => links.has(id.toLowerCase()),
    get(id) {
      const l = links.get(id.toLowerCase());
      return l && view(l);
    },
    list: (d) => [...links.values()].filter((l) => d === undefined || l.direction === d).map(view),

    add(link) {
      const id = link.id.toLowerCase();
      // Two links to one peer waste a slot and let one node take several: keep the first.
      if (links.has(id)) return "duplicate";
      if (count(link.direction) >= limit(link.direction)) return "full";
      if (crowded(link.direction, link.prefix, link.group)) return "crowded";
      const added = { id, direction: link.direction, openedAt: link.openedAt, rttMs: link.rttMs ?? null, prefix: link.prefix, group: link.group };
      links.set(id, added);
      counted(added, 1);
      return "added";
    },
    hasRoomFor: (d, prefix, group) => !crowded(d, prefix, group),
    remove(id) {
      const key = id.toLowerCase();
      const l = links.get(key);
      if (!l) return false;
      links.delete(key);
      counted(l, -1);
      return true;
    },
    overShared() {
      const over: string[] = [];
      for (const d of ["out", "in"] as const) {
        // Asked every sweep: links of one direction under the limit cannot be over it.
        if (byDirection[d] <= groupLimit(d)) continue;
        const inShared = [...links.values()].filter((l) => l.direction === d && l.prefix !== undefined && shared(l.prefix)).sort((a, b) => a.openedAt - b.openedAt);
        over.push(...inShared.slice(groupLimit(d)).map((l) => l.id).reverse());
      }
      return over;
    },
    setRtt(id, rttMs) {
      const l = links.get(id.toLowerCase());
      if (l && Number.isFinite(rttMs) && rttMs >= 0) l.rttMs = rttMs;
    },
    deficit: () => Math.max(0, maxOut - count("out")),

    /** Seed 001 §候选池: every few minutes switch 1–2 links, drawn at random. Only outgoing links are
     *  ours to switch (incoming ones are the other side's choice). Links younger than half an
     *  interval are kept, so a fresh link has time to exchange candidates. While the pool is short of
     *  outgoing links the deficit is dialled instead of dropping more. */
    planSwitch(now, rand, options = {}) {
      if (now < nextSwitchAt) return null;
      nextSwitchAt = now + interval * (1 + SWITCH_JITTER * (2 * rand() - 1));
      const deficit = Math.max(0, maxOut - count("out"));
      const available = options.candidates ?? Infinity;
      if (deficit > 0 || available === 0) return { drop: [], dial: Math.min(deficit, available) };
      const eligible = [...links.values()].filter((l) => l.direction === "out" && now - l.openedAt >= interval / 2);
      const want = Math.min(rand() < 0.5 ? 1 : 2, eligible.length, available);
      const drop: string[] = [];
      for (let i = 0; i < want; i++) {
        const j = i + Math.floor(rand() * (eligible.length - i));
        [eligible[i], eligible[j]] = [eligible[j]!, eligible[i]!];
        drop.push(eligible[i]!.id);
      }
      return { drop, dial: drop.length };
    },
  };
}
