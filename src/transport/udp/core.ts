// The parts of a UDP endpoint that a client-only socket needs too: the shared socket, outgoing QUIC dials
// from it, serving peer-opened streams, link events and counters (DESIGN §2: one socket per port).
import { QUICClient, events as quicEvents, errors as quicErrors, type QUICConnection, type QUICStream } from "@matrixai/quic";
import type QuicLibLogger from "@matrixai/logger";
import { DEFAULTS } from "../../config/index.ts";
import { PeerError, PinMismatchError, TimeoutError, errorLine } from "../../errors.ts";
import { formatAddress, unmapIp } from "../../contracts/index.ts";
import { describeQuicError } from "../quic/errors.ts";
import { clientQuicConfig, clientQuicCrypto, quicLogger } from "../quic/config.ts";
import { QUIC_CLOSE_NORMAL, QUIC_HANDSHAKE_TIMEOUT_MS } from "../quic/constants.ts";
import { createQuicLink, validatedPeerMove, type LinkState, type QuicLink } from "../quic/link.ts";
import { newRpcCounters, serveStream, type RpcCounters, type StreamServer } from "../quic/rpc.ts";
import { MAX_MUX_CHANNELS_PER_LINK, serveMuxStream } from "../quic/mux-server.ts";
import { classifyPeerStream, rawStreamOf, type RawStreamHandler } from "../quic/raw-stream.ts";
import { QUIC_STREAM_CODE } from "../quic/constants.ts";
import { REQUEST_TIMEOUT_MS } from "../../constants.ts";
import { nodeIdOf } from "../../identity/index.ts";
import { timingSafeEqual } from "node:crypto";
import type { Trust } from "../../rpc/index.ts";
import type { Router } from "../../rpc/index.ts";
import { cancelStream, deadline, StreamAbort, streamCodeToReason, streamReasonToCode } from "../quic/stream-io.ts";
import { newSocketCounters, SharedUdpSocket, type RawDatagramHandler, type SharedSocketCounters } from "./shared-socket.ts";
import type { Logger } from "../../contracts/index.ts";

export interface DialOptions {
  /** Accept only a server certificate with this SPKI (hex SHA-256); without it the link is first contact. */
  pinSpki?: string;
  /** The peer's X25519 key, when the caller knows it (kept on the link). */
  peerKey?: Uint8Array;
  signal?: AbortSignal;
  /** @default QUIC_HANDSHAKE_TIMEOUT_MS */
  timeoutMs?: number;
}

/** "migrate": the peer's address moved and QUIC validated the new path (link.remote is the new address;
 *  the listener gets the old one too). */
export type LinkEvent = "connect" | "bind" | "migrate" | "close";
export type LinkListener = (link: QuicLink, previous?: { ip: string; port: number }) => void;

export interface UdpCoreCounters extends RpcCounters, SharedSocketCounters {
  /** Links opened (inbound accepted + outbound dialled). */
  connections: number;
  /** Outbound dials refused because the peer's certificate did not match the pin. */
  pinMismatches: number;
  /** Outbound dials that failed for any other reason (timeout, refused, unreachable). */
  dialFailures: number;
  /** Raw streams handed to onRawStream. */
  rawStreams: number;
  /** Raw streams reset: no handler, or a malformed header. */
  rawRefused: number;
}

export interface UdpCoreInit {
  host: string;
  port: number;
  idleTimeoutMs?: number;
  onRawDatagram?: RawDatagramHandler;
  /** Takes the raw streams peers open (raw-stream.ts); without it they are reset. */
  onRawStream?: RawStreamHandler;
}

export class UdpCore {
  readonly rpc: RpcCounters = newRpcCounters();
  readonly linkCounters = { connections: 0, pinMismatches: 0, dialFailures: 0, rawStreams: 0, rawRefused: 0 };
  readonly socketCounters: SharedSocketCounters = newSocketCounters();
  readonly links = new Map<string, LinkState>();
  readonly logger: QuicLibLogger;
  socket: SharedUdpSocket | undefined;
  private stopController = new AbortController();
  private readonly listeners = new Map<LinkEvent, Set<LinkListener>>();
  private readonly clients = new Set<QUICClient>();
  /** Request channels open on each link. */
  private readonly channels = new Map<LinkState, number>();

  constructor(
    readonly init: UdpCoreInit,
    readonly router: Router,
    readonly log?: Logger,
  ) {
    this.logger = quicLogger(log);
  }

  get idleTimeoutMs(): number {
    return this.init.idleTimeoutMs ?? DEFAULTS.idle_timeout_s * 1000;
  }

  get stopSignal(): AbortSignal {
    return this.stopController.signal;
  }

  counters(): UdpCoreCounters {
    return { ...this.rpc, ...this.linkCounters, ...this.socketCounters };
  }

  async openSocket(): Promise<SharedUdpSocket> {
    this.stopController = new AbortController();
    const socket = new SharedUdpSocket({ logger: this.logger.getChild("socket"), onRawDatagram: this.init.onRawDatagram, counters: this.socketCounters });
    socket.onDatagramError = (err) => this.log?.debug("datagram handling failed", { error: errorLine(err) });
    await socket.start({ host: this.init.host, port: this.init.port });
    this.socket = socket;
    return socket;
  }

  /** Aborts every pending wait (handlers, requests, dials) tied to this run. */
  abortAll(): void {
    this.stopController.abort(new PeerError("the UDP endpoint is stopping"));
  }

  /** Closes our dials and the socket. The server (if any) must be stopped before. */
  async closeAll(): Promise<void> {
    this.abortAll();
    await Promise.allSettled([...this.clients].map((c) => c.destroy({ isApp: true, errorCode: QUIC_CLOSE_NORMAL, force: true })));
    this.clients.clear();
    const socket = this.socket;
    this.socket = undefined;
    if (socket) await socket.stop({ force: true }).catch((err) => this.log?.warn("UDP socket did not stop cleanly", { error: errorLine(err) }));
    this.links.clear();
  }

  on(event: LinkEvent, fn: LinkListener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(fn);
    return () => set.delete(fn);
  }

  emit(event: LinkEvent, link: QuicLink, previous?: { ip: string; port: number }): void {
    for (const fn of this.listeners.get(event) ?? []) {
      try {
        fn(link, previous);
      } catch (err) {
        this.log?.error(`link ${event} listener failed`, { error: errorLine(err) });
      }
    }
  }

  /** Registers a link, serves the streams its peer opens, and forgets it when the connection closes. */
  adopt(conn: QUICConnection, link: LinkState): void {
    this.links.set(link.connectionId, link);
    this.linkCounters.connections++;
    conn.addEventListener(quicEvents.EventQUICConnectionStream.name, (evt: Event) => {
      const stream = (evt as quicEvents.EventQUICConnectionStream).detail as QUICStream;
      void this.servePeerStream(stream, link);
    });
    // A packet that quiche sends elsewhere than link.remote means it moved (or is probing) the path: the
    // peer's NAT re-mapped, or the peer migrated. The link follows only a validated move.
    conn.addEventListener(quicEvents.EventQUICConnectionSend.name, (evt: Event) => {
      const to = (evt as quicEvents.EventQUICConnectionSend).detail;
      if (to.port === link.remote.port && unmapIp(to.address) === link.remote.ip) return;
      const moved = validatedPeerMove(conn, link.remote);
      if (!moved) return;
      const previous = link.remote;
      link.remote = moved;
      this.log?.debug("QUIC peer moved to a validated path", { from: formatAddress(previous.ip, previous.port), to: formatAddress(moved.ip, moved.port) });
      this.emit("migrate", link, previous);
    });
    void conn.closedP.then(() => {
      if (this.links.get(link.connectionId) === link) this.links.delete(link.connectionId);
      this.emit("close", link);
    });
    this.emit("connect", link);
  }

  /** A peer-opened stream: a request (served by the router) or a raw stream (onRawStream). Never throws. */
  private async servePeerStream(stream: QUICStream, link: LinkState): Promise<void> {
    const wait = deadline(REQUEST_TIMEOUT_MS, "QUIC stream header", this.stopSignal);
    let kind: Awaited<ReturnType<typeof classifyPeerStream>>;
    try {
      kind = await classifyPeerStream(stream, wait.signal);
    } catch (err) {
      this.linkCounters.rawRefused++;
      cancelStream(stream, err instanceof PeerError ? new StreamAbort(QUIC_STREAM_CODE.refused, err.message) : err);
      return;
    } finally {
      wait.done();
    }
    if (kind.kind === "raw") {
      const handler = this.init.onRawStream;
      if (!handler) {
        this.linkCounters.rawRefused++;
        cancelStream(stream, new StreamAbort(QUIC_STREAM_CODE.refused, "no raw streams on this endpoint"));
        return;
      }
      this.linkCounters.rawStreams++;
      try {
        handler(rawStreamOf(stream, kind.protocol, kind.readable), link);
      } catch (err) {
        this.log?.error("raw stream handler failed", { error: errorLine(err) });
        cancelStream(stream, err);
      }
      return;
    }
    const server = this.streamServer(link);
    if (kind.kind === "mux") {
      // An idle channel has no deadline (it lives with its connection), so a peer may hold only a few.
      const open = this.channels.get(link) ?? 0;
      if (open >= MAX_MUX_CHANNELS_PER_LINK) {
        this.rpc.refusedLimits++;
        cancelStream(stream, new StreamAbort(QUIC_STREAM_CODE.refused, `more than ${MAX_MUX_CHANNELS_PER_LINK} request channels`));
        return;
      }
      this.channels.set(link, open + 1);
      try {
        await serveMuxStream(stream, kind.reader, kind.rest, server);
      } finally {
        const n = (this.channels.get(link) ?? 1) - 1;
        if (n <= 0) this.channels.delete(link);
        else this.channels.set(link, n);
      }
    } else await serveStream(stream, server, kind.readable);
  }

  /** How requests on `link`'s streams are served; the context is read per request (app.bind pins a link
   *  between two requests of one channel). */
  private streamServer(link: LinkState): StreamServer {
    let nodeId: { key: Uint8Array; id: string } | undefined;
    const promote = (to: { trust: Trust; peerKey: Uint8Array }) => this.promote(link, to);
    return {
      router: this.router,
      counters: this.rpc,
      stopSignal: this.stopSignal,
      log: this.log,
      context: () => {
        const key = link.peerKey;
        if (key && nodeId?.key !== key) nodeId = { key, id: nodeIdOf(key) };
        return {
          transport: "quic",
          remote: link.remote,
          connectionId: link.connectionId,
          trust: link.pinned ? "pinned" : "untrusted",
          peer: { key: key ?? null, nodeId: key ? nodeId!.id : null },
          promote,
        };
      },
    };
  }

  /** An app proved its key on an inbound link (app.bind): the link is pinned from now on. QUIC links carry
   *  no mesh trust (nodes bootstrap over WSS), so "mesh" counts as pinned here. */
  promote(link: LinkState, to: { trust: Trust; peerKey: Uint8Array }): void {
    if (link.direction !== "in" || to.trust === "untrusted") return;
    // One identity per connection: a bound link keeps its first key (app.bind refuses another one).
    if (link.peerKey && !sameBytes(link.peerKey, to.peerKey)) return;
    link.pinned = true;
    link.peerKey = to.peerKey;
    this.log?.debug("app link bound", { peer: formatAddress(link.remote.ip, link.remote.port) });
    this.emit("bind", link);
  }

  /** Dials `addr` from the shared socket (so the NAT mapping is the one peers and servers already see). */
  async dial(addr: { ip: string; port: number }, opts: DialOptions = {}): Promise<QuicLink> {
    const socket = this.socket;
    if (!socket) throw new PeerError(`Cannot dial ${formatAddress(addr.ip, addr.port)}: the UDP endpoint is not running`);
    const peer = formatAddress(addr.ip, addr.port);
    let mismatch: string | undefined;
    const config = clientQuicConfig({
      pinSpki: opts.pinSpki,
      idleTimeoutMs: this.idleTimeoutMs,
      onPinMismatch: (got) => {
        mismatch = got;
      },
    });
    const ms = opts.timeoutMs ?? QUIC_HANDSHAKE_TIMEOUT_MS;
    const signals = [this.stopSignal, ...(opts.signal ? [opts.signal] : [])];
    let client: QUICClient;
    try {
      client = await QUICClient.createQUICClient(
        {
          host: addr.ip,
          port: addr.port,
          socket,
          crypto: clientQuicCrypto,
          config,
          logger: this.logger.getChild("client"),
          reasonToCode: streamReasonToCode,
          codeToReason: streamCodeToReason,
        },
        { timer: ms, signal: AbortSignal.any(signals) },
      );
    } catch (err) {
      if (mismatch !== undefined) {
        this.linkCounters.pinMismatches++;
        this.log?.warn("refused QUIC peer: certificate does not match the pinned SPKI", { peer, want: opts.pinSpki, got: mismatch });
        throw new PinMismatchError(`Cannot connect to ${peer}: its certificate (SPKI ${mismatch.slice(0, 16)}…) does not match the pinned one`, opts.pinSpki ?? "", mismatch);
      }
      this.linkCounters.dialFailures++;
      if (opts.signal?.aborted) throw opts.signal.reason;
      if (err instanceof quicErrors.ErrorQUICClientCreateTimeout || err instanceof quicErrors.ErrorQUICConnectionStartTimeout) {
        throw new TimeoutError(`QUIC handshake with ${peer}`, ms);
      }
      throw new PeerError(`Cannot connect to ${peer} over QUIC: ${describeQuicError(err)}`, { cause: err });
    }
    this.clients.add(client);
    void client.closedP.then(() => this.clients.delete(client));
    const link = createQuicLink(client.connection, {
      direction: "out",
      pinned: opts.pinSpki !== undefined,
      peerKey: opts.peerKey,
      spki: opts.pinSpki,
      closeConnection: () => client.destroy({ isApp: true, errorCode: QUIC_CLOSE_NORMAL, force: true }),
    });
    this.adopt(client.connection, link);
    return link;
  }
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
