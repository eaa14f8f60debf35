// Server side of the mapping lifetime test, STUN:Live (STUN2 seed 000 §提供的服务 2 "NAT 映射生命期", DESIGN §6
// "Mapping lifetime"; RFC 4787 §4.3).
//
// 1. nat.live.begin {K, sockets}: a session tied to the client's QUIC connection; answers a token.
// 2. Each fresh client socket i sends hello-live(token, i) to the main port. The server records the mapped
//    address (same IP as the QUIC connection, or dropped: probes only go to the requester's own address) and
//    answers ack-live(i, mapped, cookie_i) at once. The ack's passage through the NAT is the last traffic of
//    that mapping: the pattern measured is "one request, one reply, then silence".
// 3. nat.live.schedule {items: (i, cookie_i, delay)}: the cookie proves the client receives at that address;
//    the server sends exactly one SN probe (source "passage", key K) to socket i at ack time + delay (0: now).
// 4. nat.live.end: cancels what is still pending and answers the age of every probe sent (send − ack), so the
//    client's bounds come from the server's clock, not from guesses about path delays.
// Bounds: one session per connection, MAX_LIVE_SESSIONS_PER_IP per IP, LIVE_MAX_SOCKETS sockets, one probe per
// socket, LIVE_MAX_DELAY_MS, and the session ends by itself after its longest possible delay.
import { bytesToHex } from "@noble/hashes/utils.js";
import { timingSafeEqual } from "node:crypto";
import { errorLine } from "../errors.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import {
  LiveBeginAnswerSchema,
  LiveBeginRequestSchema,
  LiveEndAnswerSchema,
  LiveEndRequestSchema,
  LiveScheduleAnswerSchema,
  LiveScheduleRequestSchema,
} from "../wire/index.ts";
import { buildControl, type ControlMessage } from "./control-packet.ts";
import { LIVE_MAX_SOCKETS, MAX_ACKS_PER_ADDRESS, NAT_COOKIE_BYTES, NAT_TOKEN_BYTES } from "./constants.ts";
import { decodeRequest, SessionTable } from "./session-table.ts";
import { buildProbe, isProbeKey } from "./probe-packet.ts";
import { randomProbeTmpLen } from "./probe-sizes.ts";
import { sameIp, type Endpoint } from "./source-check.ts";
import type { Logger } from "../contracts/index.ts";

/** Longest delay a server schedules, in ms: the default plan's 300 s plus slack. */
const LIVE_MAX_DELAY_MS = 310_000;
/** A lifetime session is dropped this long after its longest possible delay, in ms. */
const LIVE_SESSION_SLACK_MS = 30_000;
/** Lifetime sessions one client IP may hold at once. */
const MAX_LIVE_SESSIONS_PER_IP = 4;
/** Lifetime sessions on a node at once (each holds up to LIVE_MAX_SOCKETS timers). */
export const MAX_LIVE_SESSIONS = 256;

/** Largest nat.live.* request, in bytes: LIVE_MAX_SOCKETS items of index, cookie and delay. */
export const MAX_LIVE_REQUEST_BYTES = 4096;

export interface LiveRequestContext {
  remoteIp: string;
  remotePort: number;
  connectionId: string;
}

export interface LiveAnswer {
  status: Status;
  payload?: Uint8Array;
  error?: string;
}

interface LiveSocket {
  mapped: Endpoint;
  cookie: Uint8Array;
  acks: number;
  ackAt: number;
  timer?: ReturnType<typeof setTimeout>;
  scheduled: boolean;
  sentAt?: number;
}

interface LiveSession {
  tokenHex: string;
  key: Uint8Array;
  connectionId: string;
  clientIp: string;
  maxSockets: number;
  sockets: Map<number, LiveSocket>;
  expiry: ReturnType<typeof setTimeout>;
}

export interface LiveCounters {
  sessions: number;
  probesSent: number;
  refused: number;
  foreignHellos: number;
}

export interface LifetimeServer {
  begin(payload: Uint8Array, ctx: LiveRequestContext): LiveAnswer;
  /** A hello-live whose token named a session of ours; `from` is its source. Returns true when it was ours. */
  hello(msg: Extract<ControlMessage, { type: "hello-live" }>, from: Endpoint): boolean;
  /** The session key for a token (hex), so the caller can verify a datagram's MAC. */
  keyOf(tokenHex: string): Uint8Array | undefined;
  schedule(payload: Uint8Array, ctx: LiveRequestContext): LiveAnswer;
  end(payload: Uint8Array, ctx: LiveRequestContext): LiveAnswer;
  dropConnection(connectionId: string): void;
  stop(): void;
  readonly counters: LiveCounters;
  readonly active: number;
}

export function createLifetimeServer(components: { send(bytes: Uint8Array, to: Endpoint): void; log?: Logger }, init: { now?: () => number; maxDelayMs?: number } = {}): LifetimeServer {
  const now = init.now ?? Date.now;
  const maxDelayMs = init.maxDelayMs ?? LIVE_MAX_DELAY_MS;
  const sessions = new SessionTable<LiveSession>("lifetime session", (s) => {
    clearTimeout(s.expiry);
    for (const sock of s.sockets.values()) if (sock.timer) clearTimeout(sock.timer);
  });
  const counters: LiveCounters = { sessions: 0, probesSent: 0, refused: 0, foreignHellos: 0 };

  const refuse = (status: Status, error: string): LiveAnswer => {
    counters.refused++;
    return { status, error };
  };

  function fire(s: LiveSession, sock: LiveSocket): void {
    sock.timer = undefined;
    if (!sessions.has(s)) return;
    sock.sentAt = now();
    try {
      components.send(buildProbe(s.key, "passage", { tmpLen: randomProbeTmpLen() }), sock.mapped);
      counters.probesSent++;
    } catch (err) {
      components.log?.debug("lifetime probe not sent", { error: errorLine(err) });
    }
  }

  return {
    counters,
    get active() {
      return sessions.size;
    },
    begin(payload, ctx) {
      const d = decodeRequest(LiveBeginRequestSchema, payload, "LiveBeginRequest", MAX_LIVE_REQUEST_BYTES);
      if (!d.ok) return refuse(d.refusal.status, d.refusal.error);
      const req = d.req;
      if (!isProbeKey(req.probeKey)) return refuse(Status.BAD_REQUEST, "probe_key must be 32 bytes");
      if (req.sockets < 1 || req.sockets > LIVE_MAX_SOCKETS) return refuse(Status.BAD_REQUEST, `sockets must be 1..${LIVE_MAX_SOCKETS}`);
      const all = sessions.all();
      if (all.some((s) => s.connectionId === ctx.connectionId)) return refuse(Status.REFUSED, "this connection already runs a lifetime test");
      if (all.filter((s) => sameIp(s.clientIp, ctx.remoteIp)).length >= MAX_LIVE_SESSIONS_PER_IP) return refuse(Status.FULL, "too many lifetime tests from this IP");
      if (sessions.size >= MAX_LIVE_SESSIONS) return refuse(Status.FULL, "too many lifetime tests running");
      const token = crypto.getRandomValues(new Uint8Array(NAT_TOKEN_BYTES));
      const s: LiveSession = {
        tokenHex: bytesToHex(token),
        key: Uint8Array.from(req.probeKey),
        connectionId: ctx.connectionId,
        clientIp: ctx.remoteIp,
        maxSockets: req.sockets,
        sockets: new Map(),
        expiry: setTimeout(() => sessions.close(s), maxDelayMs + LIVE_SESSION_SLACK_MS),
      };
      sessions.add(s);
      counters.sessions++;
      return { status: Status.OK, payload: encodeMessage(LiveBeginAnswerSchema, { token, maxDelayMs, maxSockets: LIVE_MAX_SOCKETS }) };
    },
    keyOf(tokenHex) {
      return sessions.keyOf(tokenHex);
    },
    hello(msg, from) {
      const s = sessions.byToken(msg.token);
      if (!s) return false;
      // Probes go only to the requester's own address: the same IP as its QUIC connection.
      if (!sameIp(from.ip, s.clientIp)) {
        counters.foreignHellos++;
        return true;
      }
      if (msg.index >= s.maxSockets) return true;
      let sock = s.sockets.get(msg.index);
      if (!sock) {
        sock = { mapped: from, cookie: crypto.getRandomValues(new Uint8Array(NAT_COOKIE_BYTES)), acks: 0, ackAt: 0, scheduled: false };
        s.sockets.set(msg.index, sock);
      } else if (sock.mapped.port !== from.port || sock.scheduled) {
        return true; // one mapping per index, and none once its probe is planned (the ack would refresh it)
      }
      if (sock.acks >= MAX_ACKS_PER_ADDRESS) return true;
      sock.acks++;
      sock.ackAt = now();
      try {
        components.send(buildControl(s.key, { type: "ack-live", token: msg.token, index: msg.index, mapped: from, cookie: sock.cookie }), from);
      } catch (err) {
        components.log?.debug("lifetime ack not sent", { error: errorLine(err) });
      }
      return true;
    },
    schedule(payload, ctx) {
      const r = sessions.request(LiveScheduleRequestSchema, payload, "LiveScheduleRequest", MAX_LIVE_REQUEST_BYTES, ctx.connectionId);
      if (!r.ok) return refuse(r.refusal.status, r.refusal.error);
      const { req, session: s } = r;
      let accepted = 0;
      const t = now();
      for (const item of req.items.slice(0, LIVE_MAX_SOCKETS)) {
        const sock = s.sockets.get(item.index);
        if (!sock || sock.scheduled || item.delayMs > maxDelayMs) continue;
        if (item.cookie.length !== NAT_COOKIE_BYTES || !timingSafeEqual(item.cookie, sock.cookie)) continue;
        sock.scheduled = true;
        sock.timer = setTimeout(() => fire(s, sock), Math.max(0, sock.ackAt + item.delayMs - t));
        accepted++;
      }
      return { status: Status.OK, payload: encodeMessage(LiveScheduleAnswerSchema, { accepted }) };
    },
    end(payload, ctx) {
      const r = sessions.request(LiveEndRequestSchema, payload, "LiveEndRequest", MAX_LIVE_REQUEST_BYTES, ctx.connectionId);
      if (!r.ok) return refuse(r.refusal.status, r.refusal.error);
      const s = r.session;
      const sent = [...s.sockets.entries()]
        .filter(([, sock]) => sock.sentAt !== undefined)
        .map(([index, sock]) => ({ index, ageMs: Math.max(0, Math.round(sock.sentAt! - sock.ackAt)) }));
      sessions.close(s);
      return { status: Status.OK, payload: encodeMessage(LiveEndAnswerSchema, { sent }) };
    },
    dropConnection(connectionId) {
      sessions.dropConnection(connectionId);
    },
    stop() {
      sessions.stop();
    },
  };
}
