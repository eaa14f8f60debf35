// How each hole-punching strategy runs at each side, as a table (seed 000 §基本规则; DESIGN §7). Which strategy
// two NAT classes get, and who dials, is punch-strategy.ts; who sends first is punch-order.ts; punch-attempt.ts
// interprets one row for one side.
//
//   strategy           listener / dialer            sockets (listen / dial)   openers (listen / dial)             dial starts
//   direct             open side / the other        main / main               none / to the peer                  at once
//   simultaneous       token rule (QUIC-Only dials) main|fresh / main|fresh   to the peer / to the peer           first opener, ≤ 1 s
//   sym-to-restricted  RC side / symmetric side     main / main               to the peer / to the peer           first opener unless second
//   sym-to-cone-spray  cone side / symmetric side   main / 256 spray sockets  probes to spray ports / every socket when a probe meets a socket
// Openers to the peer: every 20 ms for 1 s, then every 250 ms, doubled by a QUIC-looking twin when a side is
// QUIC-Only; the send order (first, second, together, silent) comes from the NAT classes, and a second sender
// waits 100 ms when it asked for the punch, else 100 ms + 3 node RTTs (punch-order.ts secondSenderDelayMs). The
// dialer retries its handshake 50 ms after a failure, the first one given 300 ms, each later one twice as long, until
// the deadline (8 s; a spray: its probe round + 3 s, at most 15 s). A QUIC-Only dialer cannot see openers: it dials
// when the listener's turn has come.
import { QUIC_HANDSHAKE_TIMEOUT_MS } from "../transport/index.ts";
import {
  PUNCH_ATTEMPT_TIMEOUT_MS,
  PUNCH_DIAL_WAIT_MS,
  PUNCH_FIRST_HANDSHAKE_TIMEOUT_MS,
  PUNCH_OPEN_FAST_INTERVAL_MS,
  PUNCH_OPEN_FAST_MS,
  PUNCH_OPEN_SLOW_INTERVAL_MS,
  SPRAY_ATTEMPT_TIMEOUT_MS,
  SPRAY_RESEND_INTERVAL_MS,
  SPRAY_START_DELAY_MS,
  SPRAY_TAIL_MS,
} from "./constants.ts";
import type { SendOrder } from "./punch-order.ts";
import { predictedPort, type PunchStrategyName, type SprayParams } from "./punch-strategy.ts";

/** Openers to the peer's known addresses: fast at first, then slower until the link is up. */
export interface OpenerSchedule {
  fastIntervalMs: number;
  fastForMs: number;
  slowIntervalMs: number;
}

export type SideSockets =
  /** The socket whose mapping the node saw (and told the peer about). */
  | { kind: "main" }
  /** The main socket, or a fresh one when punch-order.ts useFreshSocket says the main mapping must stay clean. */
  | { kind: "main-or-fresh" }
  /** The spray plan's `sockets` fresh sockets, each with its own mapping; the one a probe meets is dialled from. */
  | { kind: "spray"; resendMs: number };

export type SideOpeners =
  | { kind: "none" }
  /** To the peer's addresses from this side's socket, in the send order of punch-order.ts; with a QUIC-looking
   *  twin when either side is QUIC-Only. */
  | { kind: "to-peer"; schedule: OpenerSchedule; quicTwinIfQuicOnly: true }
  /** One opener from every spray socket to the peer, repeated every `resendMs` (SideSockets "spray"). */
  | { kind: "from-spray-sockets" }
  /** Rounds of the spray plan's `probes` probes to distinct ports of the peer's IP, predicted ports first, paced
   *  at its probeIntervalMs (at least minPauseMs between sends), from `startDelayMs` after the offer. */
  | { kind: "to-spray-ports"; startDelayMs: number; minPauseMs: number };

export type DialStart =
  | "at-once"
  /** When the listener's first opener arrives (both filters are open), or after waitMs. */
  | "first-opener"
  /** As "first-opener", except for a side that sends second: its turn came already. */
  | "first-opener-unless-second"
  /** When a probe meets one of the spray sockets. */
  | "spray-hit";

export interface DialerRecipe {
  sockets: SideSockets;
  openers: SideOpeners;
  start: DialStart;
  /** Longest wait for the first opener, in ms. */
  waitMs: number;
  /** A dialer whose own box passes only QUIC (QUIC-Only) never sees the listener's openers: "listener-turn" waits
   *  instead until the listener has sent (punch-order.ts blindDialWaitMs), with the first opener still ending
   *  the wait if one comes. */
  blind: "listener-turn" | null;
  /** Timeout of the first handshake; each retry doubles it, up to handshakeTimeoutMs. */
  firstHandshakeTimeoutMs: number;
  handshakeTimeoutMs: number;
  /** Pause before a failed handshake is retried; null: one handshake only. */
  retryMs: number | null;
}

export interface ListenerRecipe {
  sockets: SideSockets;
  openers: SideOpeners;
  /** The listener takes the first inbound link whose punch.hello carries the peer's token. */
  waitsFor: "hello";
}

export type AttemptBudget =
  | { kind: "fixed"; ms: number }
  /** startDelayMs + probes × probeIntervalMs + tailMs of the spray plan, at most capMs. */
  | { kind: "spray-round"; startDelayMs: number; tailMs: number; capMs: number };

export interface StrategyRecipe {
  /** Who listens and who dials (decided by punch-strategy.ts; said here for the reader). */
  listener: string;
  dialer: string;
  listen: ListenerRecipe;
  dial: DialerRecipe;
  budget: AttemptBudget;
}

export type PunchableStrategy = Exclude<PunchStrategyName, "impossible">;

const toPeer: SideOpeners = {
  kind: "to-peer",
  schedule: { fastIntervalMs: PUNCH_OPEN_FAST_INTERVAL_MS, fastForMs: PUNCH_OPEN_FAST_MS, slowIntervalMs: PUNCH_OPEN_SLOW_INTERVAL_MS },
  quicTwinIfQuicOnly: true,
};
const fixedBudget: AttemptBudget = { kind: "fixed", ms: PUNCH_ATTEMPT_TIMEOUT_MS };
const dialRetried = {
  waitMs: PUNCH_DIAL_WAIT_MS,
  blind: "listener-turn",
  firstHandshakeTimeoutMs: PUNCH_FIRST_HANDSHAKE_TIMEOUT_MS,
  handshakeTimeoutMs: QUIC_HANDSHAKE_TIMEOUT_MS,
  retryMs: 50,
} as const;

export const PUNCH_RECIPES: Readonly<Record<PunchableStrategy, StrategyRecipe>> = {
  direct: {
    listener: "the open side (Public/FullC); both open: the token rule",
    dialer: "the other side",
    // The open listener needs no hole; its openers would only poison the dialer's NAT (punch-order.ts).
    listen: { sockets: { kind: "main" }, openers: { kind: "none" }, waitsFor: "hello" },
    dial: { sockets: { kind: "main" }, openers: toPeer, start: "at-once", ...dialRetried },
    budget: fixedBudget,
  },
  simultaneous: {
    listener: "the token rule's listener (the non-QUIC-Only side)",
    dialer: "the token rule's dialer (a QUIC-Only side)",
    listen: { sockets: { kind: "main-or-fresh" }, openers: toPeer, waitsFor: "hello" },
    dial: { sockets: { kind: "main-or-fresh" }, openers: toPeer, start: "first-opener", ...dialRetried },
    budget: fixedBudget,
  },
  "sym-to-restricted": {
    listener: "the restricted-cone side (opens its IP filter towards the symmetric side)",
    dialer: "the symmetric side (from a new mapping of its main socket)",
    listen: { sockets: { kind: "main" }, openers: toPeer, waitsFor: "hello" },
    dial: { sockets: { kind: "main" }, openers: toPeer, start: "first-opener-unless-second", ...dialRetried },
    budget: fixedBudget,
  },
  "sym-to-cone-spray": {
    listener: "the cone side (probes many ports of the symmetric side's IP)",
    dialer: "the symmetric side (many fresh mappings)",
    listen: { sockets: { kind: "main" }, openers: { kind: "to-spray-ports", startDelayMs: SPRAY_START_DELAY_MS, minPauseMs: 10 }, waitsFor: "hello" },
    dial: {
      sockets: { kind: "spray", resendMs: SPRAY_RESEND_INTERVAL_MS },
      openers: { kind: "from-spray-sockets" },
      start: "spray-hit",
      waitMs: 0,
      blind: null,
      firstHandshakeTimeoutMs: QUIC_HANDSHAKE_TIMEOUT_MS,
      handshakeTimeoutMs: QUIC_HANDSHAKE_TIMEOUT_MS,
      retryMs: null,
    },
    budget: { kind: "spray-round", startDelayMs: SPRAY_START_DELAY_MS, tailMs: SPRAY_TAIL_MS, capMs: SPRAY_ATTEMPT_TIMEOUT_MS },
  },
};

/** The row for a strategy; an impossible pair has none (no offer is made for it). */
export function recipeFor(strategy: PunchStrategyName): StrategyRecipe {
  if (strategy === "impossible") throw new Error("an impossible pair has no punch recipe");
  return PUNCH_RECIPES[strategy];
}

/** The attempt's deadline. */
export function attemptBudgetMs(budget: AttemptBudget, spray: SprayParams | null): number {
  if (budget.kind === "fixed") return budget.ms;
  if (!spray) throw new Error("a spray budget needs the spray plan");
  return Math.min(budget.capMs, budget.startDelayMs + spray.probes * spray.probeIntervalMs + budget.tailMs);
}

/** Gap before the next opener, `sinceStartMs` after the first one. */
export function openerGapMs(s: OpenerSchedule, sinceStartMs: number): number {
  return sinceStartMs < s.fastForMs ? s.fastIntervalMs : s.slowIntervalMs;
}

/** Timeout of the dialer's handshake number `attempt` (0 = the first): doubling from the first, capped. */
export function handshakeTimeoutMs(recipe: DialerRecipe, attempt: number): number {
  return Math.min(recipe.handshakeTimeoutMs, recipe.firstHandshakeTimeoutMs * 2 ** Math.min(attempt, 16));
}

/** Whether the dialer waits for the listener's first opener (up to waitMs) before its handshake. */
export function dialWaitsForOpener(start: DialStart, order: SendOrder): boolean {
  return start === "first-opener" || (start === "first-opener-unless-second" && order !== "second");
}

/** One round of spray probes: predicted ports first (when the NAT allocates with a constant step), then distinct
 *  random ones, `probes` in all (fewer when the range is smaller). */
export function sprayRoundPorts(plan: SprayParams, random: () => number = Math.random): number[] {
  const range = plan.portMax - plan.portMin + 1;
  const order: number[] = [];
  const used = new Set<number>();
  if (plan.predicted) {
    for (let k = 1; k <= plan.predicted.count && order.length < plan.probes; k++) {
      const p = predictedPort(plan, plan.predicted.base, plan.predicted.delta, k);
      if (!used.has(p)) used.add(p), order.push(p);
    }
  }
  while (order.length < Math.min(plan.probes, range)) {
    const p = plan.portMin + Math.floor(random() * range);
    if (!used.has(p)) used.add(p), order.push(p);
  }
  return order;
}
