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
// Strategy specifics:
//   direct            the listener is open (Public/FullC): the dialer dials at once.
//   simultaneous      both cones: as above.
//   sym-to-restricted the RC listener opens towards the symmetric side's IP (its filter checks only the IP);
//                     the symmetric dialer dials from its main socket (a new mapping) after a short delay.
//   sym-to-cone-spray the symmetric dialer opens `sockets` fresh sockets, each sending openers to the cone
//                     (each gets its own mapping); the cone listener sends `probes` openers to distinct ports of
//                     the symmetric side's IP. The first probe that meets a mapping arrives on one spray
//                     socket: the dialer closes them all and dials from that socket's port, whose mapping the
//                     cone's filter now admits.
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { TimeoutError, errorLine } from "../errors.ts";
import type { NatClassName } from "../nat/class.ts";
import { formatAddress } from "../contracts/address.ts";
import { QUIC_HANDSHAKE_TIMEOUT_MS } from "../transport/quic/constants.ts";
import { expectOk, type QuicLink } from "../transport/quic/link.ts";
import type { DialOptions } from "../transport/udp/endpoint.ts";
import { encodeMessage } from "../wire/codec.ts";
import { PunchHelloSchema } from "../wire/gen/punch-link_pb.ts";
import { timingSafeEqual } from "node:crypto";
import {
  PUNCH_ATTEMPT_TIMEOUT_MS,
  PUNCH_DIAL_WAIT_MS,
  PUNCH_LINK_METHOD,
  PUNCH_OPEN_FAST_INTERVAL_MS,
  PUNCH_OPEN_FAST_MS,
  PUNCH_OPEN_SLOW_INTERVAL_MS,
  PUNCH_PACKET_BYTES,
  SPRAY_ATTEMPT_TIMEOUT_MS,
  SPRAY_RESEND_INTERVAL_MS,
  PUNCH_SECOND_SENDER_DELAY_MS,
  SPRAY_START_DELAY_MS,
  SPRAY_TAIL_MS,
} from "./constants.ts";
import { sendOrder, useFreshSocket, type SendOrder } from "./punch-order.ts";
import { readPunchHelloAnswer, type PunchOffer } from "./punch-info.ts";
import { encodePunchPacket, isPunchPacketFrom, PUNCH_PACKET_TYPE } from "./punch-packet.ts";
import { resultBase, type PunchResult } from "./punch-result.ts";
import { predictedPort } from "./punch-strategy.ts";
import { raceSignal } from "../transport/quic/stream-io.ts";
import type { Logger } from "../contracts/logger.ts";

export interface PeerAddr {
  ip: string;
  port: number;
}

/** One UDP socket an attempt punches from: raw datagrams and QUIC dials (its QUIC server takes the listener's
 *  side). */
export interface AttemptSocket {
  sendRaw(bytes: Uint8Array, port: number, ip: string): void;
  dial(addr: PeerAddr, opts: DialOptions): Promise<QuicLink>;
}

/** A socket opened for one attempt: kept while the punched link on it lives, else released. */
export interface OwnedSocket extends AttemptSocket {
  /** The socket stays open until `link` closes. */
  adopt(link: QuicLink): void;
  release(): Promise<void>;
}

/** What an attempt needs from the app's socket and client (punch-client.ts provides it). */
export interface AttemptIo {
  /** The socket that holds our mapping to the node (the one the peer was told about). */
  main: AttemptSocket;
  /** A fresh socket with the main one's handlers, on `port` (0 = any): the spray socket that met the peer, or
   *  a second sender that must not disturb the main socket's mapping (punch-order.ts useFreshSocket). */
  openSocket(port: number): Promise<OwnedSocket>;
  /** Listener: the inbound link whose punch.hello carried the peer's token for this attempt. */
  waitHello(signal: AbortSignal): Promise<QuicLink>;
  /** Subscribes to this attempt's openers that reached the main socket (already authenticated). */
  onOpener(fn: (from: PeerAddr) => void): () => void;
  /** Local address the spray sockets bind to ("0.0.0.0", "::", or the main socket's address). */
  bindHost: string;
  /** Our node id (hex), sent in the hello. */
  selfId: string;
  log?: Logger;
}

export interface AttemptInit {
  /** Our NAT class (reported in the result). */
  nat: NatClassName | null;
  /** @default PUNCH_ATTEMPT_TIMEOUT_MS, or SPRAY_ATTEMPT_TIMEOUT_MS for a spray */
  timeoutMs?: number;
  signal?: AbortSignal;
}

export interface AttemptOutcome {
  result: PunchResult;
  /** The punched link (already checked both ways); null when it failed. */
  link: QuicLink | null;
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}


const same = (a: PeerAddr, b: PeerAddr) => a.ip === b.ip && a.port === b.port;

/** Runs one attempt; never throws (failures are results with a reason). */
export async function runAttempt(io: AttemptIo, offer: PunchOffer, init: AttemptInit): Promise<AttemptOutcome> {
  const started = performance.now();
  const timeoutMs = init.timeoutMs ?? (offer.spray ? sprayBudgetMs(offer.spray) : PUNCH_ATTEMPT_TIMEOUT_MS);
  const sides = { strategy: offer.strategy, role: offer.role, myNat: init.nat, peerNat: offer.peerNat };
  const order = sendOrder(sides);
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new TimeoutError(`punch attempt with ${formatAddress(offer.ip, offer.port)}`, timeoutMs)), timeoutMs);
  const onOuterAbort = () => ac.abort(init.signal!.reason);
  if (init.signal?.aborted) onOuterAbort();
  else init.signal?.addEventListener("abort", onOuterAbort, { once: true });
  const signal = ac.signal;

  const stats = { sent: 0, received: 0, hitPort: null as number | null, probes: 0 };
  const peerAddrs: PeerAddr[] = [{ ip: offer.ip, port: offer.port }];
  let seq = 0;
  const opener = (type: (typeof PUNCH_PACKET_TYPE)[keyof typeof PUNCH_PACKET_TYPE]) => encodePunchPacket(offer.ownToken, { type, attemptId: offer.attemptId, seq: seq++ });
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
    const punchMs = Math.round(performance.now() - started);
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
    if (offer.strategy === "sym-to-cone-spray" && offer.role === "dial") {
      ({ link, owned } = await sprayDial(io, offer, signal, stats, opener));
    } else if (offer.strategy === "sym-to-cone-spray") link = await sprayListen(io, offer, signal, stats, opener);
    else {
      const hello = offer.role === "listen" ? raceSignal(io.waitHello(signal), signal) : null;
      hello?.catch(() => {});
      // punch-order.ts: the side that must go second waits, so the first sender's packet is a reply for it.
      if (order === "second") await pause(PUNCH_SECOND_SENDER_DELAY_MS, signal);
      if (useFreshSocket(sides, order)) owned = await io.openSocket(0);
      const sock: AttemptSocket = owned ?? io.main;
      // A QUIC-Only box drops every UDP datagram that does not look like QUIC: there, each opener is doubled
      // by a QUIC-looking one (fixed bit set) that opens the NAT but that the peer's QUIC stack then ignores.
      const quicLooking = init.nat === "quic-only" || offer.peerNat === "quic-only";
      const stopOpeners =
        order === "silent"
          ? () => {}
          : openerLoop(
              (bytes) => {
                for (const a of peerAddrs) {
                  sock.sendRaw(bytes, a.port, a.ip);
                  if (quicLooking) sock.sendRaw(quicLookingOpener(), a.port, a.ip);
                  stats.sent++;
                }
              },
              () => opener(PUNCH_PACKET_TYPE.open),
              signal,
            );
      try {
        link = hello ? await hello : await dialPeer(io, sock, offer, order, signal, firstOpener, peerAddrs);
      } finally {
        stopOpeners();
      }
    }
    const up: QuicLink = link;
    let rttMs: number | null = null;
    try {
      const t0 = performance.now();
      expectOk(await up.request(PUNCH_LINK_METHOD.ping, undefined, { signal, timeoutMs: Math.max(500, timeoutMs - (performance.now() - started)) }));
      rttMs = Math.round((performance.now() - t0) * 100) / 100;
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
    clearTimeout(timer);
    init.signal?.removeEventListener("abort", onOuterAbort);
    unsubscribe();
  }
}

/** A datagram shaped like a QUIC short-header packet (RFC 9000 §17.3: bit 7 clear, fixed bit 6 set) with
 *  random contents: it passes a QUIC-only middlebox; the receiver's QUIC stack finds no connection for it and
 *  drops it. */
function quicLookingOpener(): Uint8Array {
  const b = crypto.getRandomValues(new Uint8Array(PUNCH_PACKET_BYTES));
  b[0] = 0x40 | (b[0]! & 0x3f);
  return b;
}

/** A spray's own deadline: the cone side's probe round, then time for a handshake (capped). */
function sprayBudgetMs(plan: NonNullable<PunchOffer["spray"]>): number {
  return Math.min(SPRAY_ATTEMPT_TIMEOUT_MS, SPRAY_START_DELAY_MS + plan.probes * plan.probeIntervalMs + SPRAY_TAIL_MS);
}

function failureReason(err: unknown, offer: PunchOffer, stats: { sent: number; received: number }, signal: AbortSignal, timeoutMs: number): string {
  const peer = `${formatAddress(offer.ip, offer.port)} (${offer.peerNat ?? "unknown NAT"})`;
  if (signal.aborted && !(signal.reason instanceof TimeoutError)) return `cancelled: ${errorLine(signal.reason)}`;
  const detail = err instanceof TimeoutError || (signal.aborted && signal.reason instanceof TimeoutError) ? `no link within ${timeoutMs} ms` : errorLine(err);
  if (/pinned one/.test(detail)) return `the peer at ${peer} presented another certificate than the node announced: ${detail}`;
  if (offer.spray && stats.received === 0) {
    return `${detail}: none of the cone side's probes met one of the symmetric side's ${offer.spray.sockets} mappings (${offer.role === "listen" ? `${stats.sent} probes sent` : "none arrived"}); a NAT that re-maps ports for tuples it saw inbound first (Linux conntrack) defeats the spray`;
  }
  if (stats.received === 0) return `${detail}: no packet from ${peer} reached us (its NAT or ours dropped them; strategy ${offer.strategy})`;
  return `${detail}: ${stats.received} packets from ${peer} reached us but the QUIC handshake did not complete`;
}

/** Sends openers: every PUNCH_OPEN_FAST_INTERVAL_MS at first, then every PUNCH_OPEN_SLOW_INTERVAL_MS. */
function openerLoop(send: (bytes: Uint8Array) => void, make: () => Uint8Array, signal: AbortSignal): () => void {
  const t0 = performance.now();
  let stopped = false;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const tick = () => {
    if (stopped || signal.aborted) return;
    try {
      send(make());
    } catch {
      // A send that fails (socket closing, no route) is the same as a lost packet.
    }
    const fast = performance.now() - t0 < PUNCH_OPEN_FAST_MS;
    timer = setTimeout(tick, fast ? PUNCH_OPEN_FAST_INTERVAL_MS : PUNCH_OPEN_SLOW_INTERVAL_MS);
  };
  tick();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}

/** The dialer's handshake + hello, retried until the attempt's deadline. An open listener is dialled at once;
 *  a symmetric dialer cannot see the RC side's openers (they go to its other mapping), so it dials once its
 *  turn came; otherwise the first opener from the listener says both filters are open. */
async function dialPeer(io: AttemptIo, sock: AttemptSocket, offer: PunchOffer, order: SendOrder, signal: AbortSignal, firstOpener: Promise<void>, peerAddrs: PeerAddr[]): Promise<QuicLink> {
  const waitForOpener = offer.strategy === "simultaneous" || (offer.strategy === "sym-to-restricted" && order !== "second");
  if (waitForOpener) await Promise.race([firstOpener, pause(PUNCH_DIAL_WAIT_MS, signal)]);
  let lastErr: unknown = new Error("no dial was made");
  while (!signal.aborted) {
    // The address the peer's openers came from wins over the announced one (they differ only when the
    // peer's NAT changed its mapping since it joined).
    const target = peerAddrs.at(-1)!;
    try {
      const link = await sock.dial(target, { pinSpki: offer.peerSpki, timeoutMs: QUIC_HANDSHAKE_TIMEOUT_MS, signal });
      await sayHello(io, link, offer, signal);
      return link;
    } catch (err) {
      lastErr = err;
      if (signal.aborted || /pinned one|token/.test(errorLine(err))) break;
      await pause(50, signal);
    }
  }
  throw lastErr;
}

/** Step 3: prove our token, check the listener's. Closes the link on failure. */
async function sayHello(io: AttemptIo, link: QuicLink, offer: PunchOffer, signal: AbortSignal): Promise<void> {
  try {
    const hello = encodeMessage(PunchHelloSchema, { attemptId: offer.attemptId, token: offer.ownToken, nodeId: io.selfId });
    const answer = readPunchHelloAnswer(expectOk(await link.request(PUNCH_LINK_METHOD.hello, hello, { signal })));
    if (answer.token.length !== offer.peerToken.length || !timingSafeEqual(answer.token, offer.peerToken)) throw new Error("the listener answered with a wrong token");
    if (answer.nodeId !== offer.peerId) throw new Error(`the listener says it is ${answer.nodeId.slice(0, 16)}…, not the announced peer (token check)`);
  } catch (err) {
    await link.close();
    throw err;
  }
}

type Stats = { sent: number; received: number; hitPort: number | null; probes: number };

/** Symmetric side of a spray: many fresh sockets, each with its own mapping towards the cone side. */
async function sprayDial(io: AttemptIo, offer: PunchOffer, signal: AbortSignal, stats: Stats, opener: (t: 1 | 2) => Uint8Array): Promise<{ link: QuicLink; owned: OwnedSocket }> {
  const plan = offer.spray!;
  const family = isIP(offer.ip) === 6 ? "udp6" : "udp4";
  const sockets: Socket[] = [];
  let hit: ((port: number) => void) | undefined;
  const met = new Promise<number>((resolve) => (hit = resolve));
  const closeAll = () =>
    Promise.all(
      sockets.splice(0).map(
        (s) =>
          new Promise<void>((r) => {
            try {
              s.close(() => r());
            } catch {
              r();
            }
          }),
      ),
    );
  let resend: ReturnType<typeof setInterval> | undefined;
  try {
    await Promise.all(
      Array.from({ length: plan.sockets }, async () => {
        const s = createSocket({ type: family });
        s.on("error", () => {});
        s.on("message", (buf) => {
          if (!isPunchPacketFrom(buf, { token: offer.peerToken, attemptId: offer.attemptId })) return;
          stats.received++;
          try {
            hit?.(s.address().port);
          } catch {
            // closed meanwhile: another socket met first
          }
        });
        await new Promise<void>((resolve, reject) => {
          s.once("error", reject);
          s.bind(0, io.bindHost === "::" && family === "udp4" ? "0.0.0.0" : io.bindHost, () => resolve());
        });
        sockets.push(s);
      }),
    );
    const sendAll = () => {
      for (const s of sockets) {
        try {
          s.send(opener(PUNCH_PACKET_TYPE.open), offer.port, offer.ip);
          stats.sent++;
        } catch {
          // closing
        }
      }
    };
    sendAll();
    resend = setInterval(sendAll, SPRAY_RESEND_INTERVAL_MS);
    const port = await raceSignal(met, signal);
    stats.hitPort = port;
    clearInterval(resend);
    resend = undefined;
    // Free the port for the QUIC socket; the NAT's mapping for (port → cone) stays, it is not tied to a socket.
    await closeAll();
    const owned = await io.openSocket(port);
    try {
      const link = await owned.dial({ ip: offer.ip, port: offer.port }, { pinSpki: offer.peerSpki, timeoutMs: QUIC_HANDSHAKE_TIMEOUT_MS, signal });
      await sayHello(io, link, offer, signal);
      return { link, owned };
    } catch (err) {
      await owned.release();
      throw err;
    }
  } finally {
    if (resend) clearInterval(resend);
    await closeAll();
  }
}

/** Cone side of a spray: openers to many ports of the symmetric side's IP, until its hello arrives. */
async function sprayListen(io: AttemptIo, offer: PunchOffer, signal: AbortSignal, stats: Stats, opener: (t: 1 | 2) => Uint8Array): Promise<QuicLink> {
  const plan = offer.spray!;
  const hello = raceSignal(io.waitHello(signal), signal);
  hello.catch(() => {});
  let done = false;
  void hello.finally(() => (done = true)).catch(() => {});
  const probing = (async () => {
    await pause(SPRAY_START_DELAY_MS, signal);
    const range = plan.portMax - plan.portMin + 1;
    while (!done && !signal.aborted) {
      // One round: predicted ports first (when the NAT allocates with a constant step), then distinct random ones.
      const order: number[] = [];
      const used = new Set<number>();
      if (plan.predicted) {
        for (let k = 1; k <= plan.predicted.count && order.length < plan.probes; k++) {
          const p = predictedPort(plan, plan.predicted.base, plan.predicted.delta, k);
          if (!used.has(p)) used.add(p), order.push(p);
        }
      }
      while (order.length < Math.min(plan.probes, range)) {
        const p = plan.portMin + Math.floor(Math.random() * range);
        if (!used.has(p)) used.add(p), order.push(p);
      }
      const t0 = performance.now();
      let i = 0;
      while (i < order.length && !done && !signal.aborted) {
        // Keep the pace by the clock, not by timer ticks (timers fire late under load).
        const due = Math.min(order.length, Math.floor((performance.now() - t0) / plan.probeIntervalMs) + 1);
        for (; i < due; i++) {
          try {
            io.main.sendRaw(opener(PUNCH_PACKET_TYPE.probe), order[i]!, offer.ip);
            stats.sent++;
            stats.probes++;
          } catch {
            // lost
          }
        }
        await pause(Math.max(plan.probeIntervalMs, 10), signal);
      }
    }
  })();
  try {
    return await hello;
  } finally {
    done = true;
    await probing.catch(() => {});
  }
}
