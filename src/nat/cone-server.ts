// Source-server side of the NAT class test, STUN:Cone (DESIGN §6 steps 1–3; STUN2 seed 000 §提供的服务 2).
//
// All requests arrive on the client's QUIC connection; every datagram goes only to an address the client proved
// it owns:
//   nat.begin {K}            → a session bound to this connection: token, a new-port socket on our IP, and the
//                              connection's source address (whoami).
//   hello-port (raw, from the pre-probe socket to the new port)
//                            → ack-port with the mapped address the new port saw: a same-IP / other-port server
//                              for the RFC 4787 mapping test. Only from the connection's IP; ≤ 1 ack per hello.
//   nat.passage {token}      → 2 SN probes (source passage, key K) on this connection's own 4-tuple, which the
//                              QUIC handshake already validated (step 2).
//   hello-formal (raw, from the client's new unconnected socket to the main port, padded to 1072 bytes)
//                            → ack-formal with the mapped address and a random cookie. Only from the connection's IP.
//   nat.formal {token, cookie, avoid, proof, consents}
//                            → the cookie proves the client receives at that mapped address; the client's proof
//                              of work is checked before anything is spent; then 4 NewPort probes from the new
//                              port and the NewHost delegation (nat-service.ts: only to nodes whose consent token
//                              the client brought) run at once; the answer reports
//                              what was sent and by whom (step 3). One formal step per session.
// A session ends after FORMAL_SESSION_TTL_MS or with its connection; its new-port socket closes then.
import { bytesToHex } from "@noble/hashes/utils.js";
import { createSocket, type Socket } from "node:dgram";
import { isIP } from "node:net";
import { timingSafeEqual } from "node:crypto";
import { errorLine } from "../errors.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import {
  NatBeginAnswerSchema,
  NatBeginRequestSchema,
  NatFormalAnswerSchema,
  NatFormalRequestSchema,
  NatPassageAnswerSchema,
  NatPassageRequestSchema,
  type NewHostProof,
} from "../wire/index.ts";
import { buildControl, controlToken, decodeControl, type ControlMessage } from "./control-packet.ts";
import {
  MAX_ACKS_PER_ADDRESS,
  MAX_AVOID_IPS,
  NAT_COOKIE_BYTES,
  NAT_TOKEN_BYTES,
  PROBE_SPACING_MS,
} from "./constants.ts";
import { decodeRequest, SessionTable } from "./session-table.ts";
import { checkNewHostProof } from "./newhost-proof.ts";
import { buildProbe, isProbeKey, newHostKey } from "./probe-packet.ts";
import { randomProbeTmpLen } from "./probe-sizes.ts";
import { formatEndpoint, normalizeIp, sameEndpoint, sameIp, type Endpoint } from "./source-check.ts";
import type { Logger } from "../contracts/index.ts";

/** A STUN:Cone session (and its new-port socket) lives this long after nat.begin, in ms: the whole test takes
 *  at most the probe timeout (6 s by default) plus a retry with another source server. */
const FORMAL_SESSION_TTL_MS = 20_000;
/** STUN:Cone sessions one QUIC connection may hold at once (a retry opens a second one). */
const MAX_FORMAL_SESSIONS_PER_CONNECTION = 2;
/** STUN:Cone sessions open on a node at once: each holds one ephemeral UDP socket. */
export const MAX_FORMAL_SESSIONS = 256;
/** Consent tokens one formal request may carry (the client asks a few would-be delegates). */
const MAX_CONSENTS = 8;
/** Passage requests per session: the client may repeat one if both probes were lost. */
const MAX_PASSAGE_PER_SESSION = 2;

/** Raw probes the source server sends on the live 4-tuple in the passage test (DESIGN §6 step 2). */
const PASSAGE_PROBE_COUNT = 2;
/** Probes the source server sends from a new port in the formal test (DESIGN §6 step 3). */
const NEWPORT_PROBE_COUNT = 4;

/** Largest nat.* request of this test, in bytes (a key or token, a cookie, a few IPs, a proof). */
export const MAX_CONE_REQUEST_BYTES = 2048;

export interface ConeRequestContext {
  remoteIp: string;
  remotePort: number;
  connectionId: string;
  signal?: AbortSignal;
}

export interface ConeAnswer {
  status: Status;
  payload?: Uint8Array;
  error?: string;
}

/** What the NewHost fan-out gets: the proven target and what the client sent along. */
export interface NewHostRequest {
  target: Endpoint;
  hostKey: Uint8Array;
  avoidIps: string[];
  proof: NewHostProof;
  /** Consent tokens the client fetched, by the IP of the node that issued each (newhost-consent.ts). */
  consents: ReadonlyMap<string, Uint8Array>;
  connectionId: string;
}

/** One delegate's part in a formal step, as reported to the client (DelegateResult on the wire). */
export interface DelegateOutcome {
  /** Hex node id. */
  nodeId: string;
  /** IP it sent from; "" when it sent nothing. */
  fromIp: string;
  sent: number;
  error: string;
}

export interface ConeServerComponents {
  /** Sends from the node's shared socket (passage probes, formal acks). */
  sendMain(bytes: Uint8Array, to: Endpoint): Promise<void>;
  /** Asks delegates over the mesh to send NewHost probes; never throws. */
  delegate(req: NewHostRequest, signal?: AbortSignal): Promise<DelegateOutcome[]>;
  log?: Logger;
}

export interface ConeServerInit {
  /** IP the new-port sockets bind to: the node's service IP, so NewPort leaves from the source server's IP. */
  bindHost: string;
  /** @default Date.now */
  now?: () => number;
  /** @default PROBE_SPACING_MS */
  spacingMs?: number;
  /** Required proof-of-work bits (tests lower it). @default NEWHOST_POW_BITS */
  powBits?: number;
}

export interface ConeCounters {
  sessions: number;
  passageProbes: number;
  newPortProbes: number;
  formalSteps: number;
  refused: number;
  /** Hellos from an IP other than the session's connection: someone aiming probes at another address. */
  foreignHellos: number;
}

export interface ConeServer {
  begin(payload: Uint8Array, ctx: ConeRequestContext): Promise<ConeAnswer>;
  passage(payload: Uint8Array, ctx: ConeRequestContext): Promise<ConeAnswer>;
  formal(payload: Uint8Array, ctx: ConeRequestContext): Promise<ConeAnswer>;
  /** The session key for a token (hex), to verify a datagram on the main socket. */
  keyOf(tokenHex: string): Uint8Array | undefined;
  /** A hello-formal that arrived on the main socket from `from`. */
  hello(msg: Extract<ControlMessage, { type: "hello-formal" }>, from: Endpoint): void;
  dropConnection(connectionId: string): void;
  stop(): void;
  readonly counters: ConeCounters;
  readonly active: number;
}

interface FormalTarget {
  mapped: Endpoint;
  cookie: Uint8Array;
  acks: number;
}

interface ConeSession {
  token: Uint8Array;
  tokenHex: string;
  key: Uint8Array;
  connectionId: string;
  clientIp: string;
  portSocket: Socket;
  port: number;
  portAcks: Map<string, number>;
  targets: FormalTarget[];
  passages: number;
  formalDone: boolean;
  expiry: ReturnType<typeof setTimeout>;
}

/** Most formal-hello addresses remembered per session (a retry from a second socket is fine, a spray is not). */
const MAX_TARGETS_PER_SESSION = 2;

export function createConeServer(components: ConeServerComponents, init: ConeServerInit): ConeServer {
  const now = init.now ?? Date.now;
  const spacingMs = init.spacingMs ?? PROBE_SPACING_MS;
  const sessions = new SessionTable<ConeSession>("NAT test session", (s) => {
    clearTimeout(s.expiry);
    try {
      s.portSocket.close();
    } catch {
      // already closed
    }
  });
  const counters: ConeCounters = { sessions: 0, passageProbes: 0, newPortProbes: 0, formalSteps: 0, refused: 0, foreignHellos: 0 };
  const log = components.log;

  const refuse = (status: Status, error: string): ConeAnswer => {
    counters.refused++;
    log?.debug("NAT request refused", { error });
    return { status, error };
  };

  function sendSpaced(count: number, make: () => Uint8Array, send: (b: Uint8Array) => Promise<void>): Promise<number> {
    return (async () => {
      let sent = 0;
      for (let i = 0; i < count; i++) {
        if (i > 0) await Bun.sleep(spacingMs);
        try {
          await send(make());
          sent++;
        } catch (err) {
          log?.debug("NAT probe not sent", { error: errorLine(err) });
        }
      }
      return sent;
    })();
  }

  function onPortDatagram(s: ConeSession, buf: Uint8Array, from: Endpoint): void {
    const token = controlToken(buf);
    if (!token || bytesToHex(token) !== s.tokenHex) return;
    const d = decodeControl(buf, s.key);
    if (!d.ok || d.msg.type !== "hello-port") return;
    if (!sameIp(from.ip, s.clientIp)) {
      counters.foreignHellos++;
      return;
    }
    const k = formatEndpoint(from);
    const acks = s.portAcks.get(k) ?? 0;
    if (acks >= MAX_ACKS_PER_ADDRESS || (s.portAcks.size >= MAX_TARGETS_PER_SESSION && acks === 0)) return;
    s.portAcks.set(k, acks + 1);
    s.portSocket.send(buildControl(s.key, { type: "ack-port", token: s.token, mapped: from }), from.port, from.ip, () => {});
  }

  function openPortSocket(host: string): Promise<Socket> {
    const family = isIP(host) === 6 ? "udp6" : "udp4";
    const sock = createSocket({ type: family, ipv6Only: family === "udp6" ? false : undefined });
    return new Promise((resolve, reject) => {
      sock.once("error", reject);
      sock.bind(0, host, () => {
        sock.off("error", reject);
        sock.on("error", (err) => log?.debug("new-port socket error", { error: errorLine(err) }));
        resolve(sock);
      });
    });
  }

  return {
    counters,
    get active() {
      return sessions.size;
    },
    async begin(payload, ctx) {
      const d = decodeRequest(NatBeginRequestSchema, payload, "NatBeginRequest", MAX_CONE_REQUEST_BYTES);
      if (!d.ok) return refuse(d.refusal.status, d.refusal.error);
      const req = d.req;
      if (!isProbeKey(req.probeKey)) return refuse(Status.BAD_REQUEST, "probe_key must be 32 bytes");
      const mine = sessions.all().filter((s) => s.connectionId === ctx.connectionId);
      if (mine.length >= MAX_FORMAL_SESSIONS_PER_CONNECTION) return refuse(Status.REFUSED, "this connection already runs NAT tests");
      if (sessions.size >= MAX_FORMAL_SESSIONS) return refuse(Status.FULL, "too many NAT tests running");
      let portSocket: Socket;
      try {
        portSocket = await openPortSocket(init.bindHost);
      } catch (err) {
        log?.warn("cannot open a new-port socket", { error: errorLine(err) });
        return { status: Status.INTERNAL, error: "cannot open a new port" };
      }
      const token = crypto.getRandomValues(new Uint8Array(NAT_TOKEN_BYTES));
      const s: ConeSession = {
        token,
        tokenHex: bytesToHex(token),
        key: Uint8Array.from(req.probeKey),
        connectionId: ctx.connectionId,
        clientIp: normalizeIp(ctx.remoteIp),
        portSocket,
        port: portSocket.address().port,
        portAcks: new Map(),
        targets: [],
        passages: 0,
        formalDone: false,
        expiry: setTimeout(() => sessions.close(s), FORMAL_SESSION_TTL_MS),
      };
      portSocket.on("message", (msg, rinfo) => {
        try {
          onPortDatagram(s, msg, { ip: normalizeIp(rinfo.address), port: rinfo.port });
        } catch (err) {
          log?.debug("new-port datagram failed", { error: errorLine(err) });
        }
      });
      sessions.add(s);
      counters.sessions++;
      return {
        status: Status.OK,
        payload: encodeMessage(NatBeginAnswerSchema, { token, newPort: s.port, observedIp: ctx.remoteIp, observedPort: ctx.remotePort }),
      };
    },
    async passage(payload, ctx) {
      const r = sessions.request(NatPassageRequestSchema, payload, "NatPassageRequest", MAX_CONE_REQUEST_BYTES, ctx.connectionId);
      if (!r.ok) return refuse(r.refusal.status, r.refusal.error);
      const s = r.session;
      if (s.passages >= MAX_PASSAGE_PER_SESSION) return refuse(Status.RATE_LIMITED, "passage already tested in this session");
      s.passages++;
      const to = { ip: ctx.remoteIp, port: ctx.remotePort };
      const sent = await sendSpaced(PASSAGE_PROBE_COUNT, () => buildProbe(s.key, "passage", { tmpLen: randomProbeTmpLen() }), (b) => components.sendMain(b, to));
      counters.passageProbes += sent;
      return { status: Status.OK, payload: encodeMessage(NatPassageAnswerSchema, { sent }) };
    },
    async formal(payload, ctx) {
      const r = sessions.request(NatFormalRequestSchema, payload, "NatFormalRequest", MAX_CONE_REQUEST_BYTES, ctx.connectionId);
      if (!r.ok) return refuse(r.refusal.status, r.refusal.error);
      const { req, session: s } = r;
      if (s.formalDone) return refuse(Status.REFUSED, "the formal step already ran in this session");
      // The cookie went only to the hello's source address: echoing it proves the requester receives there.
      const target = s.targets.find((t) => req.cookie.length === NAT_COOKIE_BYTES && timingSafeEqual(t.cookie, req.cookie));
      if (!target) return refuse(Status.REFUSED, "unknown cookie: probes go only to an address that echoed its cookie");
      if (req.avoidIps.length > MAX_AVOID_IPS || req.avoidIps.some((ip) => isIP(ip) === 0)) return refuse(Status.BAD_REQUEST, `avoid_ips must be up to ${MAX_AVOID_IPS} IP addresses`);
      const hostKey = newHostKey(s.key);
      const proof = checkNewHostProof(req.proof, target.mapped, hostKey, now(), init.powBits);
      if (!proof.ok) return refuse(Status.REFUSED, `no valid proof of work for the NewHost step (${proof.reason})`);
      s.formalDone = true;
      counters.formalSteps++;
      const to = target.mapped;
      const newPort = sendSpaced(
        NEWPORT_PROBE_COUNT,
        () => buildProbe(s.key, "newPort", { tmpLen: randomProbeTmpLen() }),
        (b) => new Promise<void>((resolve, reject) => s.portSocket.send(b, to.port, to.ip, (err) => (err ? reject(err) : resolve()))),
      );
      const consents = new Map<string, Uint8Array>();
      for (const c of req.consents.slice(0, MAX_CONSENTS)) if (isIP(c.serverIp) !== 0) consents.set(normalizeIp(c.serverIp), c.token);
      const delegates = components.delegate({ target: to, hostKey, avoidIps: req.avoidIps, proof: req.proof!, consents, connectionId: s.connectionId }, ctx.signal);
      const [newPortSent, results] = await Promise.all([newPort, delegates]);
      counters.newPortProbes += newPortSent;
      sessions.close(s);
      return {
        status: Status.OK,
        payload: encodeMessage(NatFormalAnswerSchema, { mappedIp: to.ip, mappedPort: to.port, newPortSent, delegates: results }),
      };
    },
    keyOf(tokenHex) {
      return sessions.keyOf(tokenHex);
    },
    hello(msg, from) {
      const s = sessions.byToken(msg.token);
      if (!s || s.formalDone) return;
      // Probes go only to the requester's own address: the same IP as its QUIC connection. A hello from any
      // other IP is someone trying to aim this test at a third party.
      if (!sameIp(from.ip, s.clientIp)) {
        counters.foreignHellos++;
        return;
      }
      let t = s.targets.find((x) => sameEndpoint(x.mapped, from));
      if (!t) {
        if (s.targets.length >= MAX_TARGETS_PER_SESSION) return;
        t = { mapped: from, cookie: crypto.getRandomValues(new Uint8Array(NAT_COOKIE_BYTES)), acks: 0 };
        s.targets.push(t);
      }
      if (t.acks >= MAX_ACKS_PER_ADDRESS) return;
      t.acks++;
      void components.sendMain(buildControl(s.key, { type: "ack-formal", token: s.token, mapped: from, cookie: t.cookie }), from).catch(() => {});
    },
    dropConnection(connectionId) {
      sessions.dropConnection(connectionId);
    },
    stop() {
      sessions.stop();
    },
  };
}
