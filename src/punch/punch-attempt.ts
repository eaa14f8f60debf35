// One hole-punching attempt at one side, from a checked offer (seed 000 §基本规则 "两端同时监听和拨号", §消息包;
// DESIGN §7; strategies in punch-strategy.ts).
//
// Both sides act at once from the UDP socket that holds their mapping to the node:
//   1. both send authenticated openers (punch-packet.ts) to the peer's public address: each one's own NAT
//      opens a mapping + filter towards the peer (the "dial" of the seed, at the UDP level) and keeps it open;
//   2. the listener (larger token, or the side the NAT classes force) is a QUIC server on that socket; the
//      dialer starts its QUIC handshake, pinned to the listener's SPKI, when the listener's first opener
//      reaches it (so both filters are open and the first Initial passes) or after a short wait;
//   3. the dialer sends punch.hello {attempt id, its token}; the listener accepts the link only with the
//      token the node gave it for this peer, and answers with its own token (checked by the dialer too);
//   4. one punch.ping measures the link's round trip.
// What differs per strategy (sockets, openers, when the dialer starts, retries, the deadline) is one row of
// punch-recipes.ts; this file interprets the row for our side. The spray's two sides are in punch-spray.ts.
import { METHOD } from "../rpc/index.ts";
import { PinMismatchError, TimeoutError, errorLine } from "../errors.ts";
import type { NatClassName } from "../nat/index.ts";
import { formatAddress } from "../contracts/index.ts";
import type { TimerHandle } from "../contracts/index.ts";
import { expectOk, type QuicLink } from "../transport/index.ts";
import { raceSignal } from "../transport/index.ts";
import { PUNCH_PACKET_BYTES } from "./constants.ts";
import { pause, PunchTokenError, realAttemptClock, sayHello, type AttemptClock, type AttemptIo, type AttemptRun, type AttemptSocket, type AttemptStats, type OwnedSocket, type PeerAddr } from "./punch-attempt-io.ts";
import type { PunchOffer } from "./punch-info.ts";
import { blindDialWaitMs, secondSenderDelayMs, sendOrder, useFreshSocket, type SendOrder } from "./punch-order.ts";
import { encodePunchPacket, PUNCH_PACKET_TYPE } from "./punch-packet.ts";
import { attemptBudgetMs, dialWaitsForOpener, handshakeTimeoutMs, openerGapMs, PUNCH_RECIPES, type DialerRecipe, type OpenerSchedule, type SideOpeners } from "./punch-recipes.ts";
import { resultBase, type PunchResult } from "./punch-result.ts";
import { sprayDial, sprayListen } from "./punch-spray.ts";

export type { AttemptClock, AttemptIo, AttemptSocket, OwnedSocket, PeerAddr } from "./punch-attempt-io.ts";

export interface AttemptInit {
  /** Our NAT class (reported in the result). */
  nat: NatClassName | null;
  /** @default the strategy's budget in punch-recipes.ts (PUNCH_ATTEMPT_TIMEOUT_MS; a spray: its probe round) */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** @default real time */
  clock?: AttemptClock;
  /** This side asked for the punch (the peer got its offer first); false for an offer the node pushed. */
  requested?: boolean;
  /** This side's RTT to the node, ms (how far behind the requester's answer is). */
  nodeRttMs?: number;
}

export interface AttemptOutcome {
  result: PunchResult;
  /** The punched link (already checked both ways); null when it failed. */
  link: QuicLink | null;
}

const same = (a: PeerAddr, b: PeerAddr) => a.ip === b.ip && a.port === b.port;

/** Runs one attempt by its strategy's row; never throws (failures are results with a reason). */
export async function runAttempt(io: AttemptIo, offer: PunchOffer, init: AttemptInit): Promise<AttemptOutcome> {
  const clock = init.clock ?? realAttemptClock;
  const started = clock.now();
  const recipe = PUNCH_RECIPES[offer.strategy];
  const timeoutMs = init.timeoutMs ?? attemptBudgetMs(recipe.budget, offer.spray);
  const sides = { strategy: offer.strategy, role: offer.role, myNat: init.nat, peerNat: offer.peerNat };
  const order = sendOrder(sides);
  const ac = new AbortController();
  const timer = clock.setTimeout(() => ac.abort(new TimeoutError(`punch attempt with ${formatAddress(offer.ip, offer.port)}`, timeoutMs)), timeoutMs);
  const onOuterAbort = () => ac.abort(init.signal!.reason);
  if (init.signal?.aborted) onOuterAbort();
  else init.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const signal = ac.signal;

  const stats: AttemptStats = { sent: 0, received: 0, hitPort: null, probes: 0 };
  const peerAddrs: PeerAddr[] = [{ ip: offer.ip, port: offer.port }];
  let seq = 0;
  const run: AttemptRun = { io, offer, signal, clock, stats, opener: (type) => encodePunchPacket(offer.ownToken, { type, attemptId: offer.attemptId, seq: seq++ }) };
  let gotOpener: () => void = () => {};
  const firstOpener = new Promise<void>((r) => (gotOpener = r));
  const unsubscribe = io.onOpener((from) => {
    stats.received++;
    // The peer's packets come from here: a port its NAT chose that the node never saw (e.g. a new mapping).
    if (!peerAddrs.some((a) => same(a, from)) && peerAddrs.length < 4) peerAddrs.push(from);
    gotOpener();
  });

  const base = resultBase(offer, init.nat);
  const finish = (link: QuicLink | null, rttMs: number | null, reason?: string): AttemptOutcome => {
    const punchMs = Math.round(clock.now() - started);
    const result: PunchResult = {
      connected: link !== null,
      peer: link ? formatAddress(link.remote.ip, link.remote.port) : null,
      rttMs,
      elapsedMs: punchMs,
      ...base,
      ...(reason !== undefined ? { reason } : {}),
      punchMs,
      packetsSent: stats.sent,
      packetsReceived: stats.received,
      ...(offer.spray ? { spray: { sockets: offer.spray.sockets, probes: stats.probes, hitPort: stats.hitPort } } : {}),
    };
    return { result, link };
  };

  let owned: OwnedSocket | null = null;
  let link: QuicLink | null = null;
  try {
    const side = offer.role === "dial" ? recipe.dial : recipe.listen;
    if (side.sockets.kind === "spray") {
      ({ link, owned } = await sprayDial(run, recipe.dial));
    } else if (side.openers.kind === "to-spray-ports") {
      link = await sprayListen(run, side.openers);
    } else {
      const hello = offer.role === "listen" ? raceSignal(io.waitHello(signal), signal) : null;
      hello?.catch(() => {});
      // punch-order.ts: the side that must go second waits, so the first sender's packet is a reply for it.
      if (order === "second") await pause(clock, secondSenderDelayMs(init.requested ?? false, init.nodeRttMs), signal);
      if (side.sockets.kind === "main-or-fresh" && useFreshSocket(sides, order)) owned = await io.openSocket(0);
      const sock: AttemptSocket = owned ?? io.main;
      const stopOpeners = startOpeners(run, side.openers, order, sock, peerAddrs, init.nat);
      try {
        const blindMs = recipe.dial.blind === "listener-turn" && init.nat === "quic-only" ? blindDialWaitMs(order, init.nodeRttMs) : null;
        link = hello ? await hello : await dialPeer(run, sock, recipe.dial, order, firstOpener, peerAddrs, blindMs);
      } finally {
        stopOpeners();
      }
    }
    const up: QuicLink = link;
    let rttMs: number | null = null;
    try {
      const t0 = clock.now();
      expectOk(await up.request(METHOD.punchLink.ping, undefined, { signal, timeoutMs: Math.max(500, timeoutMs - (clock.now() - started)) }));
      rttMs = Math.round((clock.now() - t0) * 100) / 100;
    } catch {
      rttMs = up.rttMs ?? null;
    }
    if (owned) owned.adopt(up);
    owned = null;
    return finish(up, rttMs);
  } catch (err) {
    if (link) await link.close();
    return finish(null, null, failureReason(err, offer, stats, signal, timeoutMs));
  } finally {
    if (owned) await owned.release();
    clock.clearTimeout(timer);
    init.signal?.removeEventListener("abort", onOuterAbort);
    unsubscribe();
  }
}

/** Openers to the peer as the row and the send order say; returns the function that stops them. A QUIC-Only box
 *  drops every UDP datagram that does not look like QUIC: there, each opener is doubled by a QUIC-looking one
 *  (fixed bit set) that opens the NAT but that the peer's QUIC stack then ignores. */
function startOpeners(run: AttemptRun, openers: SideOpeners, order: SendOrder, sock: AttemptSocket, peerAddrs: PeerAddr[], myNat: NatClassName | null): () => void {
  if (openers.kind !== "to-peer" || order === "silent") return () => {};
  const quicLooking = openers.quicTwinIfQuicOnly && (myNat === "quic-only" || run.offer.peerNat === "quic-only");
  return openerLoop(
    run,
    openers.schedule,
    (bytes) => {
      for (const a of peerAddrs) {
        sock.sendRaw(bytes, a.port, a.ip);
        if (quicLooking) sock.sendRaw(quicLookingOpener(), a.port, a.ip);
        run.stats.sent++;
      }
    },
    () => run.opener(PUNCH_PACKET_TYPE.open),
  );
}

/** A datagram shaped like a QUIC short-header packet (RFC 9000 §17.3: bit 7 clear, fixed bit 6 set) with
 *  random contents: it passes a QUIC-only middlebox; the receiver's QUIC stack finds no connection for it and
 *  drops it. */
function quicLookingOpener(): Uint8Array {
  const b = crypto.getRandomValues(new Uint8Array(PUNCH_PACKET_BYTES));
  b[0] = 0x40 | (b[0]! & 0x3f);
  return b;
}

function failureReason(err: unknown, offer: PunchOffer, stats: { sent: number; received: number }, signal: AbortSignal, timeoutMs: number): string {
  const peer = `${formatAddress(offer.ip, offer.port)} (${offer.peerNat ?? "unknown NAT"})`;
  if (signal.aborted && !(signal.reason instanceof TimeoutError)) return `cancelled: ${errorLine(signal.reason)}`;
  const detail = err instanceof TimeoutError || (signal.aborted && signal.reason instanceof TimeoutError) ? `no link within ${timeoutMs} ms` : errorLine(err);
  if (err instanceof PinMismatchError) return `the peer at ${peer} presented another certificate than the node announced: ${detail}`;
  if (offer.spray && stats.received === 0) {
    return `${detail}: none of the cone side's probes met one of the symmetric side's ${offer.spray.sockets} mappings (${offer.role === "listen" ? `${stats.sent} probes sent` : "none arrived"}); a NAT that re-maps ports for tuples it saw inbound first (Linux conntrack) defeats the spray`;
  }
  if (stats.received === 0) return `${detail}: no packet from ${peer} reached us (its NAT or ours dropped them; strategy ${offer.strategy})`;
  return `${detail}: ${stats.received} packets from ${peer} reached us but the QUIC handshake did not complete`;
}

/** Sends openers on the schedule: fast at first, then slower. */
function openerLoop(run: AttemptRun, schedule: OpenerSchedule, send: (bytes: Uint8Array) => void, make: () => Uint8Array): () => void {
  const { clock, signal } = run;
  const t0 = clock.now();
  let stopped = false;
  let timer: TimerHandle | undefined;
  const tick = () => {
    if (stopped || signal.aborted) return;
    try {
      send(make());
    } catch {
      // A send that fails (socket closing, no route) is the same as a lost packet.
    }
    timer = clock.setTimeout(tick, openerGapMs(schedule, clock.now() - t0));
  };
  tick();
  return () => {
    stopped = true;
    clock.clearTimeout(timer);
  };
}

/** The dialer's handshake + hello, retried until the attempt's deadline. An open listener is dialled at once;
 *  a symmetric dialer cannot see the RC side's openers (they go to its other mapping), so it dials once its
 *  turn came; otherwise the first opener from the listener says both filters are open. */
async function dialPeer(
  run: AttemptRun,
  sock: AttemptSocket,
  recipe: DialerRecipe,
  order: SendOrder,
  firstOpener: Promise<void>,
  peerAddrs: PeerAddr[],
  blindMs: number | null,
): Promise<QuicLink> {
  const { io, offer, signal, clock } = run;
  // A blind dialer (QUIC-Only) waits for the listener's turn instead; an opener that does come still ends it.
  if (dialWaitsForOpener(recipe.start, order)) await Promise.race([firstOpener, pause(clock, blindMs ?? recipe.waitMs, signal)]);
  let lastErr: unknown = new Error("no dial was made");
  for (let attempt = 0; !signal.aborted; attempt++) {
    // The address the peer's openers came from wins over the announced one (they differ only when the
    // peer's NAT changed its mapping since it joined).
    const target = peerAddrs.at(-1)!;
    try {
      const link = await sock.dial(target, { pinSpki: offer.peerSpki, timeoutMs: handshakeTimeoutMs(recipe, attempt), signal });
      await sayHello(io, link, offer, signal);
      return link;
    } catch (err) {
      lastErr = err;
      // A wrong certificate or token will not get better by dialling again.
      if (signal.aborted || recipe.retryMs === null || err instanceof PinMismatchError || err instanceof PunchTokenError) break;
      await pause(clock, recipe.retryMs, signal);
    }
  }
  throw lastErr;
}
