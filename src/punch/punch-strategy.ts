// Which hole-punching strategy two NAT classes allow, who dials and who listens (seed 000 §基本规则,
// §例外: Sym --> Public/FullC; DESIGN §6 classes, §7 "going beyond the seed is welcome"; RFC 4787 §4.1, §5).
//
// Each class is reduced to how it behaves for punching (RFC 4787 mapping × filtering):
//   open        Public, FullC          unsolicited packets to the known address get in
//   cone-addr   RC                     endpoint-independent mapping, filter on the remote IP only
//   cone-port   P-RC, UDP-Firewall,    endpoint-independent mapping, filter on remote IP and port.
//               QUIC-Only              UDP-Firewall is a stateful filter without translation; QUIC-Only's
//                                      underlying NAT is unknown, so it is taken as the strictest cone. Hole
//                                      opening packets should look like QUIC (fixed bit set) to pass it.
//   symmetric   Sym                    mapping depends on the destination: the port a peer sees is unknown
//   blocked     UDP-Blocked            no UDP at all
//   unknown     (no probe result)      can still dial out to an open peer
//
// Strategies (the table in tests/punch/punch-strategy.test.ts covers every pair):
//   direct             one side is open: the other dials it (both open: the token rule picks).
//   simultaneous       both cone: both send at once (the listener first opens its filter towards the
//                      dialer's mapped address); EIM makes the address the node saw the one the peer sees.
//                      A QUIC-Only side dials (its own QUIC Initials pass its filter); else the token rule.
//   sym-to-restricted  Sym ↔ RC, beyond the seed: RC's filter checks only the remote IP, so RC opens it by
//                      sending to the Sym side's IP (any port), then the Sym side dials RC's mapped address
//                      from a new mapping; RC answers the port the packet came from. Assumes the symmetric
//                      NAT keeps one external IP for all mappings (RFC 4787 REQ-2, "paired" pooling).
//   sym-to-cone-spray  Sym ↔ P-RC / UDP-Firewall / QUIC-Only, beyond the seed: birthday paradox. The Sym
//                      side opens SPRAY_SOCKETS sockets, each sending to the cone's mapped address (each
//                      gets a new mapping); the cone side sends SPRAY_PROBES probes to distinct ports of the
//                      Sym side's IP, each opening its filter for that port. One collision connects both
//                      ways. With a constant allocation step (portDelta) the predicted ports go first.
//                      The node's policy (punch-service.ts) still refuses QUIC-Only (its box drops the
//                      openers) and, with punch_spray_nat_cones = false, P-RC.
//   impossible         Sym ↔ Sym (both ports unknown; the birthday odds are ~N·M/R² per round), anything
//                      with UDP-Blocked, and an unknown class with anything but an open peer.
import type { NatClassName } from "../nat/index.ts";
import {
  MAX_PREDICT_DELTA,
  SPRAY_EXPECT_ODDS,
  SPRAY_PORT_MAX,
  SPRAY_PORT_MIN,
  SPRAY_PREDICT_WINDOW,
  SPRAY_PROBE_INTERVAL_MS,
  SPRAY_PROBES,
  SPRAY_SOCKETS,
} from "./constants.ts";
import { decideRoles, otherSide, type SideName } from "./punch-roles.ts";

export type PunchBehavior = "open" | "cone-addr" | "cone-port" | "symmetric" | "blocked" | "unknown";

export type PunchStrategyName = "direct" | "simultaneous" | "sym-to-restricted" | "sym-to-cone-spray" | "impossible";

/** Order of preference when several peers are possible (lower is better: fewer packets, surer). */
export const STRATEGY_RANK: Readonly<Record<PunchStrategyName, number>> = {
  direct: 0,
  simultaneous: 1,
  "sym-to-restricted": 2,
  "sym-to-cone-spray": 3,
  impossible: 4,
};

/** How a NAT class behaves for punching; null (not probed) is "unknown". */
export function punchBehaviorOf(nat: NatClassName | null): PunchBehavior {
  switch (nat) {
    case "public":
    case "full-cone":
      return "open";
    case "restricted-cone":
      return "cone-addr";
    case "port-restricted-cone":
    case "udp-firewall":
    case "quic-only":
      return "cone-port";
    case "symmetric":
      return "symmetric";
    case "udp-blocked":
      return "blocked";
    case null:
      return "unknown";
  }
}

/** The strategy for a pair of classes, before tokens: roles only when the classes force them. */
export interface ClassStrategy {
  strategy: PunchStrategyName;
  /** The side that must dial (the other listens); null = decided by the token rule (or impossible). */
  forcedDialer: SideName | null;
  /** The listener first sends a few packets to the dialer's address to open its own filter. */
  listenerOpens: boolean;
  /** Whether the strategy is expected to connect (spray: the default-parameter odds ≥ SPRAY_EXPECT_ODDS). */
  expectSuccess: boolean;
  reason: string;
}

function describe(nat: NatClassName | null): string {
  return nat ?? "unknown";
}

/** Class-level decision for sides a and b (symmetric in a/b up to naming). */
export function strategyFor(natA: NatClassName | null, natB: NatClassName | null): ClassStrategy {
  const a = punchBehaviorOf(natA);
  const b = punchBehaviorOf(natB);
  const pair = `${describe(natA)} ↔ ${describe(natB)}`;
  const impossible = (why: string): ClassStrategy => ({ strategy: "impossible", forcedDialer: null, listenerOpens: false, expectSuccess: false, reason: `${pair}: ${why}` });
  const is = (side: SideName, beh: PunchBehavior) => (side === "a" ? a : b) === beh;
  const either = (beh: PunchBehavior): SideName | null => (a === beh ? "a" : b === beh ? "b" : null);

  if (either("blocked")) return impossible("a side has no UDP path (UDP-Blocked)");
  if (a === "open" && b === "open") {
    return { strategy: "direct", forcedDialer: null, listenerOpens: false, expectSuccess: true, reason: `${pair}: both accept unsolicited packets; the token rule picks the dialer` };
  }
  const open = either("open");
  if (open) {
    const dialer = otherSide(open);
    return {
      strategy: "direct",
      forcedDialer: dialer,
      listenerOpens: false,
      expectSuccess: true,
      reason: `${pair}: the ${describe(open === "a" ? natA : natB)} side accepts unsolicited packets, so the other side dials it`,
    };
  }
  if (either("unknown")) return impossible("NAT class unknown and the peer is not Public/FullC; run `findings probe` first");
  const cone = (beh: PunchBehavior) => beh === "cone-addr" || beh === "cone-port";
  if (cone(a) && cone(b)) {
    // A QUIC-Only side dials when the other is not QUIC-Only: its own packets are then real QUIC Initials,
    // which its middlebox passes, while the other side's hole-opening packets need not reach it.
    const quicOnly: SideName | null = natA === "quic-only" && natB !== "quic-only" ? "a" : natB === "quic-only" && natA !== "quic-only" ? "b" : null;
    return {
      strategy: "simultaneous",
      forcedDialer: quicOnly,
      listenerOpens: true,
      expectSuccess: true,
      reason: quicOnly
        ? `${pair}: both map independently of the destination; both send at once and the QUIC-Only side dials (its filter passes only QUIC)`
        : `${pair}: both map independently of the destination; both send at once and the token rule picks the dialer`,
    };
  }
  if (a === "symmetric" && b === "symmetric") return impossible("both sides are symmetric: neither port can be known in advance");
  // One side symmetric, the other a cone.
  const sym: SideName = is("a", "symmetric") ? "a" : "b";
  const coneBeh = sym === "a" ? b : a;
  if (coneBeh === "cone-addr") {
    return {
      strategy: "sym-to-restricted",
      forcedDialer: sym,
      listenerOpens: true,
      expectSuccess: true,
      reason: `${pair}: the RC side filters on the remote IP only, so it opens to the symmetric side's IP and the symmetric side dials`,
    };
  }
  const odds = sprayOdds(SPRAY_SOCKETS, SPRAY_PROBES, SPRAY_PORT_MAX - SPRAY_PORT_MIN + 1);
  return {
    strategy: "sym-to-cone-spray",
    forcedDialer: sym,
    listenerOpens: true,
    expectSuccess: odds >= SPRAY_EXPECT_ODDS,
    reason: `${pair}: the symmetric side opens ${SPRAY_SOCKETS} sockets, the cone side probes ${SPRAY_PROBES} of its ports (birthday odds ${(odds * 100).toFixed(1)} % with random allocation)`,
  };
}

/** Whether a pair of classes can be punched at all (optionally excluding the costly spray). */
export function isPunchable(natA: NatClassName | null, natB: NatClassName | null, options: { allowSpray?: boolean } = {}): boolean {
  const s = strategyFor(natA, natB).strategy;
  return s !== "impossible" && (s !== "sym-to-cone-spray" || options.allowSpray !== false);
}

/** Chance that `probes` distinct random ports out of `range` hit at least one of `sockets` random mapped
 *  ports: 1 − C(range − sockets, probes) / C(range, probes). */
export function sprayOdds(sockets: number, probes: number, range: number): number {
  if (sockets <= 0 || probes <= 0 || range <= 0) return 0;
  if (sockets + probes > range) return 1;
  let miss = 1;
  for (let i = 0; i < probes; i++) miss *= (range - sockets - i) / (range - i);
  return 1 - miss;
}

/** The constant step between successive mapped ports of one local socket (pre-probe answers in send
 *  order), or null: needs ≥ 3 ports, every step equal, non-zero and at most MAX_PREDICT_DELTA. */
export function portDeltaOf(mappedPorts: readonly number[]): number | null {
  if (mappedPorts.length < 3) return null;
  const delta = mappedPorts[1]! - mappedPorts[0]!;
  if (delta === 0 || Math.abs(delta) > MAX_PREDICT_DELTA) return null;
  for (let i = 2; i < mappedPorts.length; i++) if (mappedPorts[i]! - mappedPorts[i - 1]! !== delta) return null;
  return delta;
}

export interface SprayParams {
  /** Fresh sockets the dialer (symmetric side) opens, each sending to the listener. */
  sockets: number;
  /** Probes the listener (cone side) sends to distinct ports of the dialer's IP. */
  probes: number;
  portMin: number;
  portMax: number;
  probeIntervalMs: number;
  /** Ports to probe first: base + delta·k for k = 1..count, wrapped into [portMin, portMax]; null = random only. */
  predicted: { base: number; delta: number; count: number } | null;
  /** Success chance with random allocation (a lower bound when ports are predicted). */
  odds: number;
}

export interface PunchSide {
  nat: NatClassName | null;
  token: Uint8Array;
  /** Public address as the node sees it. */
  ip: string;
  port: number;
  /** Symmetric NATs only: constant allocation step, when known (portDeltaOf). */
  portDelta?: number | null;
}

export interface PunchPlan extends ClassStrategy {
  dialer: SideName | null;
  listener: SideName | null;
  /** What decided the roles: the NAT classes, or the seed's token rule (token, then IP, then port). */
  decidedBy: "nat" | "token" | "ip" | "port" | null;
  spray: SprayParams | null;
}

/** The full plan for one attempt: class strategy, roles, spray parameters. */
export function planPunch(a: PunchSide, b: PunchSide): PunchPlan {
  const cls = strategyFor(a.nat, b.nat);
  const none: PunchPlan = { ...cls, dialer: null, listener: null, decidedBy: null, spray: null };
  if (cls.strategy === "impossible") return none;
  let dialer: SideName;
  let decidedBy: PunchPlan["decidedBy"];
  if (cls.forcedDialer) {
    dialer = cls.forcedDialer;
    decidedBy = "nat";
  } else {
    const roles = decideRoles(a, b);
    if (!roles) return { ...none, strategy: "impossible", listenerOpens: false, expectSuccess: false, reason: "both sides are the same endpoint" };
    dialer = roles.dialer;
    decidedBy = roles.by;
  }
  let spray: SprayParams | null = null;
  if (cls.strategy === "sym-to-cone-spray") {
    const hard = dialer === "a" ? a : b;
    spray = sprayParamsFor(hard);
  }
  return { ...cls, dialer, listener: otherSide(dialer), decidedBy, spray };
}

/** Spray parameters for the symmetric side `hard` (its port as the node saw it is the prediction base). */
export function sprayParamsFor(hard: Pick<PunchSide, "port" | "portDelta">): SprayParams {
  const delta = hard.portDelta ?? null;
  const predictable = delta !== null && delta !== 0 && Math.abs(delta) <= MAX_PREDICT_DELTA;
  return {
    sockets: SPRAY_SOCKETS,
    probes: SPRAY_PROBES,
    portMin: SPRAY_PORT_MIN,
    portMax: SPRAY_PORT_MAX,
    probeIntervalMs: SPRAY_PROBE_INTERVAL_MS,
    predicted: predictable ? { base: hard.port, delta: delta!, count: SPRAY_PREDICT_WINDOW } : null,
    odds: sprayOdds(SPRAY_SOCKETS, SPRAY_PROBES, SPRAY_PORT_MAX - SPRAY_PORT_MIN + 1),
  };
}

/** The k-th predicted port (k ≥ 1), wrapped into [portMin, portMax] the way allocators wrap. */
export function predictedPort(params: Pick<SprayParams, "portMin" | "portMax">, base: number, delta: number, k: number): number {
  const range = params.portMax - params.portMin + 1;
  const offset = (((base - params.portMin + delta * k) % range) + range) % range;
  return params.portMin + offset;
}
