// Choosing punch peers in the app pool: random punch within a kind, directed punch by node id (seed 000
// §打洞协助, §定向打洞; DESIGN §7 "up to peers_punch, 5").
//
// Compatibility is by NAT class (punch-strategy.ts strategyFor). Random punch prefers surer strategies
// (direct, then simultaneous, then sym-to-restricted, then spray) and draws at random within each tier,
// so the same few members are not handed to everyone. Pure: randomness comes in as `rand` ([0, 1)).
import { METHOD } from "../rpc/index.ts";
import type { AppMember, AppPool } from "./app-pool.ts";
import { sameAddress } from "./app-pool.ts";
import { DEFAULTS } from "../config/index.ts";
import type { Rand } from "./punch-roles.ts";
import { isPunchable, STRATEGY_RANK, strategyFor, type ClassStrategy } from "./punch-strategy.ts";

export type PunchMatchError =
  | "kind-not-served"
  | "requester-not-joined"
  | "target-not-in-pool"
  | "same-node"
  | "same-endpoint"
  | "incompatible"
  | "no-peers";

export type MatchFailure = { ok: false; error: PunchMatchError; message: string };

export interface PunchMatch {
  /** The requester's membership (side "a"). */
  requester: AppMember;
  /** The chosen peer (side "b"). */
  peer: AppMember;
  /** Class-level strategy, requester = a, peer = b. */
  strategy: ClassStrategy;
}

export interface RandomPunchRequest {
  nodeId: string;
  kind: string;
}

export interface RandomMatchOptions {
  rand: Rand;
  /** Most peers (config `peers_punch`; a request's own `max` is capped by it). @default peers_punch of defaults.toml */
  max?: number;
  /** Offer Sym ↔ P-RC pairs (256 sockets + 1024 probes each). @default true */
  allowSpray?: boolean;
}

export interface DirectedPunchRequest {
  nodeId: string;
  /** The requester's pool. */
  kind: string;
  targetId: string;
  /** The target's pool; undefined = whichever of its memberships was seen last. */
  targetKind?: string;
}

function fail(error: PunchMatchError, message: string): MatchFailure {
  return { ok: false, error, message };
}

function requesterOf(pool: AppPool, nodeId: string, kind: string): AppMember | MatchFailure {
  if (!pool.serves(kind)) return fail("kind-not-served", `kind ${JSON.stringify(kind)} is not served by this node`);
  const me = pool.get(kind, nodeId);
  if (!me) return fail("requester-not-joined", `node ${nodeId.slice(0, 16)} has not joined the pool of ${JSON.stringify(kind)}; send ${METHOD.app.join} first`);
  return me;
}

/** Random punch: up to `max` compatible members of the requester's kind, best strategies first. */
export function randomMatches(pool: AppPool, request: RandomPunchRequest, options: RandomMatchOptions): { ok: true; matches: PunchMatch[] } | MatchFailure {
  const me = requesterOf(pool, request.nodeId, request.kind);
  if ("ok" in me) return me;
  const max = Math.max(0, Math.floor(options.max ?? DEFAULTS.peers_punch));
  const tiers = new Map<number, PunchMatch[]>();
  let seenOthers = 0;
  for (const peer of pool.members(request.kind)) {
    if (peer.nodeId === me.nodeId || sameAddress(peer.address, me.address)) continue;
    seenOthers++;
    if (!isPunchable(me.nat, peer.nat, { allowSpray: options.allowSpray })) continue;
    const strategy = strategyFor(me.nat, peer.nat);
    const rank = STRATEGY_RANK[strategy.strategy];
    let tier = tiers.get(rank);
    if (!tier) tiers.set(rank, (tier = []));
    tier.push({ requester: me, peer, strategy });
  }
  const matches: PunchMatch[] = [];
  for (const rank of [...tiers.keys()].sort((x, y) => x - y)) {
    const tier = tiers.get(rank)!;
    // Partial Fisher–Yates: only as many draws as still needed.
    for (let i = 0; i < tier.length && matches.length < max; i++) {
      const j = i + Math.floor(options.rand() * (tier.length - i));
      [tier[i], tier[j]] = [tier[j]!, tier[i]!];
      matches.push(tier[i]!);
    }
    if (matches.length >= max) break;
  }
  if (matches.length === 0 && max > 0) {
    return fail(
      "no-peers",
      seenOthers === 0
        ? `no other member in the pool of ${JSON.stringify(request.kind)}`
        : `none of the ${seenOthers} other members of ${JSON.stringify(request.kind)} can be punched from ${me.nat ?? "an unknown NAT class"}`,
    );
  }
  return { ok: true, matches };
}

/** Directed punch (seed 000 §定向打洞): the target by node id, through the id → connection map. */
export function directedMatch(pool: AppPool, request: DirectedPunchRequest): { ok: true; match: PunchMatch } | MatchFailure {
  const me = requesterOf(pool, request.nodeId, request.kind);
  if ("ok" in me) return me;
  const targetId = request.targetId.toLowerCase();
  if (targetId === me.nodeId.toLowerCase()) return fail("same-node", "a node cannot punch itself");
  const peer = pool.byId(targetId, request.targetKind);
  if (!peer) {
    const where = request.targetKind !== undefined ? `the pool of ${JSON.stringify(request.targetKind)}` : "any pool of this node";
    return fail("target-not-in-pool", `node ${targetId.slice(0, 16)} is not in ${where}; it must be connected to this node`);
  }
  if (sameAddress(peer.address, me.address)) {
    return fail("same-endpoint", `node ${targetId.slice(0, 16)} has the requester's own address ${peer.address.ip}:${peer.address.port}`);
  }
  const strategy = strategyFor(me.nat, peer.nat);
  if (strategy.strategy === "impossible") return fail("incompatible", strategy.reason);
  return { ok: true, match: { requester: me, peer, strategy } };
}
