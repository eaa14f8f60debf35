// App side of the punch service: one UDP socket that keeps a pinned link to a Findings node, joins the
// node's app pool for a kind, asks for punches (random or directed), and punches whenever the node offers —
// including the re-offers of signalling coordination (seed 000 §应用池, §打洞协助, §定向打洞, §信令协调;
// DESIGN §7). Used by `findings punch` and by apps.
//
// The socket is a UdpEndpoint (QUIC server + our dials + raw datagrams on one port): the node link, the
// openers, the listener's QUIC server and the dialer's handshakes all use it, so the NAT mapping the node
// saw is the one the peer meets. Only the node link may push offers. Inbound links must say punch.hello with
// the token the node gave us for that peer within PUNCH_HELLO_TIMEOUT_MS, else they are closed.
import { METHOD } from "../rpc/index.ts";
import { bytesToHex, hexToBytes } from "@noble/hashes/utils.js";
import { timingSafeEqual } from "node:crypto";
import { isIP } from "node:net";
import { FindingsError, PeerError, errorLine } from "../errors.ts";
import { createRunCertificate, type RunCertificate } from "../identity/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { natToProto, type NatClassName } from "../nat/index.ts";
import { formatAddress } from "../contracts/index.ts";
import { bootstrapApp } from "../transport/index.ts";
import type { QuicLink } from "../transport/index.ts";
import { ANY_TRUST, PINNED_OR_MESH, perHost, type MethodPolicy, type RpcHandler } from "../rpc/index.ts";
import type { RouteTable } from "../rpc/index.ts";
import { Punch, PunchLink } from "../wire/index.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../transport/index.ts";
import { decodeMessage, encodeMessage, Status, statusName } from "../wire/index.ts";
import { NatClass } from "../wire/index.ts";
import { PunchHelloAnswerSchema } from "../wire/index.ts";
import { AppJoinAnswerSchema, AppJoinSchema, PunchRequestSchema } from "../wire/index.ts";
import { runAttempt, type AttemptIo, type OwnedSocket, type PeerAddr } from "./punch-attempt.ts";
import { MAX_CONCURRENT_ATTEMPTS, MAX_EARLY_STREAMS, OFFER_PUSH_TIMEOUT_MS, PUNCH_HELLO_TIMEOUT_MS, PUNCH_NODE_STEP_TIMEOUT_MS, PUNCH_REJOIN_MAX_MS, PUNCH_REJOIN_MIN_MS } from "./constants.ts";
import { MAX_ADDRESS_CHANGE_BYTES, MAX_PUNCH_HELLO_BYTES, MAX_PUNCH_INFO_BYTES, readAddressChange, readPunchAnswer, readPunchHello, readPunchOffer, type PunchOffer } from "./punch-info.ts";
import { isPunchPacketFrom, peekPunchPacket } from "./punch-packet.ts";
import { newerLinkWins, type PunchResult } from "./punch-result.ts";
import { APP_METHOD_POLICY, PunchRefusedError, type JoinInfo, type PunchClient, type PunchClientComponents, type PunchClientInit } from "./punch-client-api.ts";
import type { RawStream } from "../transport/index.ts";

export { APP_METHOD_POLICY, PunchRefusedError, isPunchRefused, type AddressChange, type JoinInfo, type PunchClient, type PunchClientComponents, type PunchClientInit } from "./punch-client-api.ts";

interface AttemptEntry {
  offer: PunchOffer;
  openers: Set<(from: PeerAddr) => void>;
  hello: Promise<QuicLink>;
  resolveHello: (link: QuicLink) => void;
  claimed: boolean;
}

export function createPunchClient(components: PunchClientComponents, init: PunchClientInit): PunchClient {
  const { key, log } = components;
  const bindHost = init.host ?? (isIP(init.server.ip) === 6 ? "::" : "0.0.0.0");
  let cert = components.cert;
  const attempts = new Map<string, AttemptEntry>();
  const peers = new Map<string, { link: QuicLink; result: PunchResult; at: number; peerSpki: string }>();
  const appRoutes = new Map<string, { handler: RpcHandler; policy: MethodPolicy }>();
  /** Sockets opened for single attempts (punch-attempt.ts openSocket), alive while their link lives. */
  const extraEndpoints = new Set<UdpEndpoint>();
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const counters = { attempts: 0, connected: 0, failed: 0, offers: 0, offersRefused: 0, rejoins: 0, remaps: 0, strangersClosed: 0 };
  let endpoint: UdpEndpoint | undefined;
  let nodeLink: QuicLink | undefined;
  let joined: JoinInfo | undefined;
  let stopController = new AbortController();
  let running = false;
  let rejoinDelay = PUNCH_REJOIN_MIN_MS;

  function later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
  }

  function onRaw(buf: Uint8Array, rinfo: { address: string; port: number }, kind: string): void {
    if (kind !== "sn") return;
    const h = peekPunchPacket(buf);
    if (!h) return;
    const a = attempts.get(bytesToHex(h.attemptId));
    if (!a || !isPunchPacketFrom(buf, { token: a.offer.peerToken, attemptId: a.offer.attemptId })) return;
    for (const fn of a.openers) fn({ ip: rinfo.address, port: rinfo.port });
  }

  const pingHandler: RpcHandler = () => ({ status: Status.OK });

  // Step 3, listener side: the dialer proves the token the node gave us for it.
  const helloHandler: RpcHandler = (payload, ctx) => {
    let hello: ReturnType<typeof readPunchHello>;
    try {
      hello = readPunchHello(payload);
    } catch (err) {
      return { status: Status.BAD_REQUEST, error: errorLine(err) };
    }
    const a = attempts.get(bytesToHex(hello.attemptId));
    if (!a || a.offer.role !== "listen" || a.claimed) return { status: Status.REFUSED, error: "no punch attempt waits for this hello" };
    const t = a.offer.peerToken;
    if (hello.token.length !== t.length || !timingSafeEqual(hello.token, t) || hello.nodeId !== a.offer.peerId) {
      return { status: Status.UNAUTHENTICATED, error: "wrong token for this attempt" };
    }
    let link: QuicLink | undefined;
    for (const ep of [endpoint, ...extraEndpoints]) link ??= ep?.links().find((l) => l.connectionId === ctx.connectionId);
    if (!link) return { status: Status.INTERNAL, error: "link is gone" };
    a.claimed = true;
    claimedLinks.add(link.connectionId);
    a.resolveHello(link);
    return { status: Status.OK, payload: encodeMessage(PunchHelloAnswerSchema, { token: a.offer.ownToken, nodeId: key.nodeId }) };
  };
  const claimedLinks = new Set<string>();
  /** Live punched links: connection id → peer id (replaced links too, until they close). */
  const peerOfLink = new Map<string, string>();
  /** Raw streams that came on a verified link before our side of its attempt finished; handed over then. */
  const earlyStreams = new Map<string, RawStream[]>();

  function deliverStream(stream: RawStream, peerId: string, link: QuicLink): void {
    if (!init.onStream) return stream.reset();
    try {
      init.onStream(stream, peerId, link);
    } catch (err) {
      log?.error("onStream callback failed", { error: errorLine(err) });
      stream.reset(err);
    }
  }

  // Raw streams are taken only on punched links: the peer proved the node's token (listener side) or our
  // dial was pinned to its certificate (dialer side). Never on the node link, never from strangers.
  function onRawStream(stream: RawStream, link: QuicLink): void {
    const peerId = peerOfLink.get(link.connectionId);
    if (peerId) return deliverStream(stream, peerId, link);
    const verified = claimedLinks.has(link.connectionId) || (link.direction === "out" && link.pinned && link !== nodeLink);
    const early = earlyStreams.get(link.connectionId) ?? [];
    if (!verified || early.length >= MAX_EARLY_STREAMS) return stream.reset();
    if (!early.length) {
      earlyStreams.set(link.connectionId, early);
      later(PUNCH_HELLO_TIMEOUT_MS, () => {
        for (const s of earlyStreams.get(link.connectionId) ?? []) s.reset();
        earlyStreams.delete(link.connectionId);
      });
    }
    early.push(stream);
  }

  // Offers pushed by the node: the peer's side of a punch someone asked for, or a re-offer after a
  // mapping change (signalling coordination). Only the node link may push them.
  const offerHandler: RpcHandler = (payload, ctx) => {
    if (!nodeLink || ctx.connectionId !== nodeLink.connectionId) {
      counters.offersRefused++;
      return { status: Status.REFUSED, error: "punch offers are accepted only from the node this app joined" };
    }
    let offer: PunchOffer;
    try {
      offer = readPunchOffer(payload);
    } catch (err) {
      counters.offersRefused++;
      return { status: Status.BAD_REQUEST, error: errorLine(err) };
    }
    if (attempts.size >= MAX_CONCURRENT_ATTEMPTS) {
      counters.offersRefused++;
      return { status: Status.RATE_LIMITED, error: `${attempts.size} punch attempts are already running` };
    }
    counters.offers++;
    void startAttempt(offer, false).catch((err: unknown) => log?.warn("punch attempt failed", { peer: offer.peerId.slice(0, 16), error: errorLine(err) }));
    return { status: Status.OK };
  };

  // The node tells us our NAT re-mapped the link to it (it saw QUIC validate the new path): our public address
  // is now another; re-offers to our recent peers follow. Only the node link may say so.
  const addressHandler: RpcHandler = (payload, ctx) => {
    if (!nodeLink || ctx.connectionId !== nodeLink.connectionId) return { status: Status.REFUSED, error: "address changes are accepted only from the node this app joined" };
    let change: ReturnType<typeof readAddressChange>;
    try {
      change = readAddressChange(payload);
    } catch (err) {
      return { status: Status.BAD_REQUEST, error: errorLine(err) };
    }
    const address = formatAddress(change.address.ip, change.address.port);
    const previous = joined?.address ?? formatAddress(change.previous.ip, change.previous.port);
    if (joined) joined = { ...joined, address, addressChanged: true };
    counters.remaps++;
    log?.info("the node saw our NAT re-map the link to it", { from: previous, to: address });
    try {
      init.onAddress?.({ address, previous });
    } catch (err) {
      log?.error("onAddress callback failed", { error: errorLine(err) });
    }
    return { status: Status.OK };
  };

  // The punched link's own methods (the listener's side of the link is inbound and unbound: any trust), and the
  // node's offers, which come on our pinned link to the node.
  const linkRoutes: RouteTable = [
    [PunchLink.method.hello, { transports: ["quic"], trust: ANY_TRUST, rate: perHost(10, 50), maxInFlight: MAX_CONCURRENT_ATTEMPTS, maxPayloadBytes: MAX_PUNCH_HELLO_BYTES, handler: helloHandler }],
    [PunchLink.method.ping, { transports: ["quic"], trust: ANY_TRUST, rate: perHost(20, 100), maxInFlight: 64, maxPayloadBytes: 0, handler: pingHandler }],
  ];
  const offerRoute = [
    Punch.method.offer,
    { transports: ["quic"], trust: PINNED_OR_MESH, rate: perHost(20, 50), maxInFlight: 2 * MAX_CONCURRENT_ATTEMPTS, maxPayloadBytes: MAX_PUNCH_INFO_BYTES, handler: offerHandler },
  ] as const;
  const addressRoute = [
    Punch.method.address,
    { transports: ["quic"], trust: PINNED_OR_MESH, rate: perHost(5, 20), maxInFlight: 4, maxPayloadBytes: MAX_ADDRESS_CHANGE_BYTES, handler: addressHandler },
  ] as const;

  /** The main socket (`main`: node link, offers) or one opened for an attempt. */
  function newEndpoint(c: RunCertificate, port: number, main: boolean): UdpEndpoint {
    const ep = createUdpEndpoint({ cert: c, nodeKey: key, log }, { host: bindHost, port, onRawDatagram: onRaw, onRawStream });
    ep.router.addAll(main ? [...linkRoutes, offerRoute, addressRoute] : linkRoutes);
    for (const [m, r] of appRoutes) ep.router.add(m, { ...r.policy, handler: r.handler }, { replace: true });
    ep.on("connect", (link) => {
      if (link.direction !== "in") return;
      // A stranger (or a peer that never proves its token) does not keep a connection on our socket.
      later(PUNCH_HELLO_TIMEOUT_MS, () => {
        if (!claimedLinks.has(link.connectionId) && !link.closed) {
          counters.strangersClosed++;
          void link.close().catch(() => {});
        }
      });
    });
    ep.on("close", (link) => {
      claimedLinks.delete(link.connectionId);
      for (const s of earlyStreams.get(link.connectionId) ?? []) s.reset();
      earlyStreams.delete(link.connectionId);
      for (const [id, p] of peers) if (p.link === link) peers.delete(id);
      const peerId = peerOfLink.get(link.connectionId);
      if (peerId !== undefined) {
        peerOfLink.delete(link.connectionId);
        try {
          init.onPeerClose?.(peerId, link);
        } catch (err) {
          log?.error("onPeerClose callback failed", { error: errorLine(err) });
        }
      }
      if (link === nodeLink) {
        nodeLink = undefined;
        if (running && init.rejoin !== false) scheduleRejoin();
      }
    });
    return ep;
  }

  function registerAttempt(offer: PunchOffer): AttemptEntry {
    let resolveHello: (l: QuicLink) => void = () => {};
    const hello = new Promise<QuicLink>((r) => (resolveHello = r));
    const entry: AttemptEntry = { offer, openers: new Set(), hello, resolveHello, claimed: false };
    attempts.set(offer.attemptHex, entry);
    return entry;
  }

  async function openSocket(port: number): Promise<OwnedSocket> {
    const ep = newEndpoint(cert!, port, false);
    await ep.start();
    extraEndpoints.add(ep);
    const release = async () => {
      extraEndpoints.delete(ep);
      await ep.stop();
    };
    return {
      sendRaw: (bytes, p, ip) => ep.sendRawNow(bytes, p, ip),
      dial: (addr, opts) => ep.dial(addr, opts),
      adopt(link) {
        ep.on("close", (l) => {
          if (l.connectionId === link.connectionId) void release().catch(() => {});
        });
        if (link.closed) void release().catch(() => {});
      },
      release,
    };
  }

  async function startAttempt(offer: PunchOffer, requested: boolean): Promise<PunchResult> {
    const ep = endpoint;
    if (!ep) throw new PeerError("the punch client is not running");
    counters.attempts++;
    const entry = registerAttempt(offer);
    const io: AttemptIo = {
      main: { sendRaw: (bytes, port, ip) => ep.sendRawNow(bytes, port, ip), dial: (addr, opts) => ep.dial(addr, opts) },
      openSocket,
      waitHello: () => entry.hello,
      onOpener: (fn) => {
        entry.openers.add(fn);
        return () => entry.openers.delete(fn);
      },
      bindHost,
      selfId: key.nodeId,
      log,
    };
    const attempt = await runAttempt(io, offer, { nat: init.nat, timeoutMs: init.attemptTimeoutMs, signal: stopController.signal, requested, nodeRttMs: nodeLink?.rttMs });
    const { result } = attempt;
    let link = attempt.link;
    attempts.delete(offer.attemptHex);
    const old = peers.get(offer.peerId);
    const at = Date.now();
    if (link && running && old && old.link !== link && !old.link.closed && !newerLinkWins({ role: old.result.role, at: old.at, peerSpki: old.peerSpki }, { role: result.role, at, peerSpki: offer.peerSpki }, { self: key.nodeId, peer: offer.peerId })) {
      // Both sides punched each other at once: keep the link both agree on; this one is not handed out.
      void link.close().catch(() => {});
      link = null;
    } else if (link && running) {
      counters.connected++;
      // The newest link to a peer replaces an older one (e.g. after the peer's mapping changed).
      peers.set(offer.peerId, { link, result, at, peerSpki: offer.peerSpki });
      peerOfLink.set(link.connectionId, offer.peerId);
      if (old && old.link !== link) void old.link.close().catch(() => {});
    } else {
      if (link) void link.close().catch(() => {});
      counters.failed++;
    }
    log?.[result.connected ? "info" : "warn"](result.connected ? "punched link up" : "punch failed", {
      peer: offer.peerId.slice(0, 16),
      at: result.peer ?? formatAddress(offer.ip, offer.port),
      strategy: offer.strategy,
      role: offer.role,
      ms: result.punchMs,
      ...(result.reason ? { reason: result.reason } : {}),
    });
    try {
      init.onResult?.(result, link);
    } catch (err) {
      log?.error("onResult callback failed", { error: errorLine(err) });
    }
    if (link) {
      const early = earlyStreams.get(link.connectionId) ?? [];
      earlyStreams.delete(link.connectionId);
      for (const s of early) peerOfLink.has(link.connectionId) ? deliverStream(s, offer.peerId, link) : s.reset();
    }
    return result;
  }

  async function connectNode(signal?: AbortSignal): Promise<JoinInfo> {
    const ep = endpoint!;
    const step = { signal: signal ? AbortSignal.any([signal, stopController.signal]) : stopController.signal, timeoutMs: PUNCH_NODE_STEP_TIMEOUT_MS };
    const { link } = await bootstrapApp(ep, { addr: init.server, nodePublicKey: init.server.publicKey }, { appKey: key, kind: init.kind, ...step });
    try {
      const join = encodeMessage(AppJoinSchema, {
        kind: init.kind,
        nodeId: key.nodeId,
        nat: init.nat ? natToProto(init.nat) : NatClass.NAT_UNKNOWN,
        spki: hexToBytes(cert!.spki),
        publicKey: key.publicKey,
        portDelta: init.portDelta ?? undefined,
      });
      // The node may push offers as soon as it has our membership: set the link first.
      nodeLink = link;
      const answer = await link.request(METHOD.app.join, join, step);
      if (answer.status !== Status.OK) throw new PunchRefusedError(METHOD.app.join, answer.status, answer.error);
      const m = decodeMessage(AppJoinAnswerSchema, answer.payload, "AppJoinAnswer");
      joined = {
        nodeId: key.nodeId,
        kind: m.kind,
        stakeAddress: m.stakeAddress,
        stakeSource: m.stakeSource,
        identityId: m.identityId,
        address: formatAddress(m.ip, m.port),
        rejoined: m.rejoined,
        addressChanged: m.addressChanged,
      };
      rejoinDelay = PUNCH_REJOIN_MIN_MS;
      try {
        init.onJoin?.(joined);
      } catch (err) {
        log?.error("onJoin callback failed", { error: errorLine(err) });
      }
      return joined;
    } catch (err) {
      if (nodeLink === link) nodeLink = undefined;
      await link.close();
      throw err;
    }
  }

  function scheduleRejoin(): void {
    const delay = rejoinDelay;
    rejoinDelay = Math.min(PUNCH_REJOIN_MAX_MS, rejoinDelay * 2);
    later(delay, () => {
      if (!running || nodeLink) return;
      counters.rejoins++;
      connectNode().catch((err) => {
        log?.warn("rejoin failed", { error: errorLine(err), retryMs: rejoinDelay });
        if (running && !nodeLink) scheduleRejoin();
      });
    });
  }

  const client: PunchClient = {
    get nodeId() {
      return key.nodeId;
    },
    get joined() {
      return joined;
    },
    get port() {
      return endpoint?.port ?? init.port ?? 0;
    },
    get endpoint() {
      if (!endpoint) throw new PeerError("the punch client is not started");
      return endpoint;
    },
    async start(opts = {}) {
      if (running && joined) return joined;
      cert ??= await createRunCertificate();
      stopController = new AbortController();
      endpoint = newEndpoint(cert, init.port ?? 0, true);
      await endpoint.start();
      running = true;
      try {
        return await connectNode(opts.signal);
      } catch (err) {
        await client.stop();
        throw err;
      }
    },
    async stop(opts = {}) {
      if (!endpoint) return;
      const goodbye = nodeLink && opts.leave !== false ? nodeLink.request(METHOD.app.leave, undefined, { timeoutMs: 1000 }).catch(() => {}) : undefined;
      running = false;
      await goodbye;
      stopController.abort(new PeerError("the punch client is stopping"));
      for (const t of timers) clearTimeout(t);
      timers.clear();
      const ep = endpoint;
      endpoint = undefined;
      nodeLink = undefined;
      await Promise.allSettled([...peers.values()].map((p) => p.link.close()));
      peers.clear();
      await Promise.allSettled([...extraEndpoints].map((e) => e.stop()));
      extraEndpoints.clear();
      await ep.stop();
    },
    async punch(targetId = null, opts = {}) {
      const link = nodeLink;
      if (!link || !running) throw new PeerError("Cannot punch: not connected to the node (start() first, or the node link is down)");
      const req = encodeMessage(PunchRequestSchema, { kind: init.kind, targetId: targetId ?? "", targetKind: opts.targetKind ?? "", max: opts.max ?? 0 });
      const signal = opts.signal ? AbortSignal.any([opts.signal, stopController.signal]) : stopController.signal;
      const answer = await link.request(METHOD.punch.request, req, { signal, timeoutMs: PUNCH_NODE_STEP_TIMEOUT_MS + OFFER_PUSH_TIMEOUT_MS });
      if (answer.status !== Status.OK) throw new PunchRefusedError(METHOD.punch.request, answer.status, answer.error);
      let offers: PunchOffer[];
      try {
        offers = readPunchAnswer(answer.payload);
      } catch (err) {
        throw new PeerError(`The node's punch answer is malformed: ${errorLine(err)}`, { cause: err });
      }
      return Promise.all(offers.map((o) => startAttempt(o, true)));
    },
    peers: () => [...peers].map(([peerId, p]) => ({ peerId, ...p })),
    handle(method, handler, policy = APP_METHOD_POLICY) {
      appRoutes.set(method, { handler, policy });
      for (const ep of [endpoint, ...extraEndpoints]) ep?.router.add(method, { ...policy, handler }, { replace: true });
    },
    counters: () => ({ ...counters, attemptsRunning: attempts.size, peers: peers.size }),
  };
  return client;
}
