// The node's UDP endpoint (DESIGN §2): one socket shared by the QUIC server (app services, app bootstrap,
// whoami), the node's own QUIC dials, and raw STUN/SN datagrams; plus the client-only variant for the CLI.
import { QUICServer, events as quicEvents, type QUICConnection } from "@matrixai/quic";
import { DEFAULTS } from "../../config/index.ts";
import { errorLine } from "../../errors.ts";
import type { RunCertificate } from "../../identity/index.ts";
import type { NodeKey } from "../../identity/index.ts";
import { formatAddress, unmapIp } from "../../contracts/index.ts";
import { appBootstrapRoutes, type AppGreeting } from "../app-bootstrap/handlers.ts";
import { serverQuicConfig, serverQuicCrypto } from "../quic/config.ts";
import {
  QUIC_CLOSE_NORMAL,
  QUIC_CLOSE_REFUSED,
  QUIC_HANDSHAKE_TIMEOUT_MS,
} from "../quic/constants.ts";
import { createQuicLink, type QuicLink } from "../quic/link.ts";
import type { RawStreamHandler } from "../quic/raw-stream.ts";
import { createSerial } from "./serial.ts";
import { createRouter, prefixOf, type Router } from "../../rpc/index.ts";
import { streamCodeToReason, streamReasonToCode } from "../quic/stream-io.ts";
import { connectionMapOf, type RawDatagramHandler } from "./shared-socket.ts";
import type { QuicDialer, UdpClient } from "./client.ts";
import { UdpCore, type DialOptions, type LinkEvent, type LinkListener, type UdpCoreCounters } from "./core.ts";
import type { Logger } from "../../contracts/index.ts";

export type { DialOptions, LinkEvent, LinkListener, QuicDialer, QuicLink, RawDatagramHandler };

export interface UdpEndpointComponents {
  cert: RunCertificate;
  nodeKey: NodeKey;
  log?: Logger;
  /** Serves peer-opened streams; the node shares one with its mesh links. @default a router of its own */
  router?: Router;
  /** What the app bootstrap answer names for an app's kind (a node's stake address and identity id). */
  greeting?: (kind: string) => AppGreeting;
}

export interface UdpEndpointInit {
  /** Address to bind; "::" is dual-stack (IPv4 peers then appear as IPv4 everywhere in our API). */
  host: string;
  /** UDP port; 0 picks a free one (see `port` after start). */
  port: number;
  /** Live inbound QUIC connections. @default max_quic_connections of defaults.toml */
  maxConnections?: number;
  /** QUIC handshakes in progress at once; more new Initials are dropped. @default max_quic_handshakes of defaults.toml */
  maxHandshakes?: number;
  /** Live inbound connections from one IP. @default max_conns_per_ip of defaults.toml */
  maxConnectionsPerIp?: number;
  /** @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  /** Datagrams that are not QUIC and that classifyDatagram calls "stun" or "sn". */
  onRawDatagram?: RawDatagramHandler;
  /** Raw streams peers open on our links (quic/raw-stream.ts); without it they are reset. */
  onRawStream?: RawStreamHandler;
}

export interface UdpEndpointCounters extends UdpCoreCounters {
  /** Inbound connections open now. */
  activeConnections: number;
  /** Handshakes in progress now. */
  handshakesInProgress: number;
  /** New Initials dropped because max_quic_handshakes handshakes were in progress. */
  handshakesDropped: number;
  /** Resent Initials dropped because their connection id was being accepted already. */
  duplicateInitials: number;
}

/** The node's endpoint: the client socket's surface plus a QUIC server, connection limits and the
 *  promise-free send of the STUN answer path. */
export interface UdpEndpoint extends UdpClient {
  /** Sends a raw datagram without a promise; `bytes` must be fresh (not reused by the caller). Dropped
   *  when the endpoint is not running. */
  sendRawNow(bytes: Uint8Array, port: number, ip: string): void;
  counters(): UdpEndpointCounters;
}

export function createUdpEndpoint(components: UdpEndpointComponents, init: UdpEndpointInit): UdpEndpoint {
  const log = components.log;
  const router = components.router ?? createRouter({ log });
  const core = new UdpCore({ host: init.host, port: init.port, idleTimeoutMs: init.idleTimeoutMs, onRawDatagram: init.onRawDatagram, onRawStream: init.onRawStream }, router, log);
  const maxConnections = init.maxConnections ?? DEFAULTS.max_quic_connections;
  const maxPerIp = init.maxConnectionsPerIp ?? DEFAULTS.max_conns_per_ip;
  const maxHandshakes = init.maxHandshakes ?? DEFAULTS.max_quic_handshakes;
  /** Inbound connections by id, and how many each IP holds. */
  const inbound = new Set<string>();
  const perIp = new Map<string, number>();
  let server: QUICServer | undefined;
  /** Counts of servers stopped before (a restarted endpoint keeps counting). */
  const handshakeCounts = { dropped: 0, duplicates: 0 };
  let running = false;
  const serial = createSerial();

  // whoami and the app bootstrap, while running.
  let removeRoutes: (() => void) | undefined;

  function onConnection(evt: Event): void {
    const conn = (evt as quicEvents.EventQUICServerConnection).detail as QUICConnection;
    // Counted per host: an IPv4 address, an IPv6 /64 (one host's share of addresses).
    const ip = prefixOf(unmapIp(conn.remoteHost), 32, 64);
    const fromIp = perIp.get(ip) ?? 0;
    if (inbound.size >= maxConnections || fromIp >= maxPerIp) {
      core.rpc.refusedLimits++;
      log?.debug("refused QUIC connection: limit reached", { peer: formatAddress(unmapIp(conn.remoteHost), conn.remotePort), total: inbound.size, fromIp });
      void conn.stop({ isApp: true, errorCode: QUIC_CLOSE_REFUSED, reason: new TextEncoder().encode("connection limit"), force: true }).catch(() => {});
      return;
    }
    const link = createQuicLink(conn, {
      direction: "in",
      pinned: false,
      closeConnection: () => conn.stop({ isApp: true, errorCode: QUIC_CLOSE_NORMAL, force: true }),
    });
    inbound.add(link.connectionId);
    perIp.set(ip, fromIp + 1);
    void conn.closedP.then(() => {
      inbound.delete(link.connectionId);
      const n = (perIp.get(ip) ?? 1) - 1;
      if (n <= 0) perIp.delete(ip);
      else perIp.set(ip, n);
    });
    core.adopt(conn, link);
  }

  async function doStart(): Promise<void> {
    const socket = await core.openSocket();
    // Brand-new handshakes are refused before quiche once the table is full (see shared-socket.ts): the
    // connections in their handshake (at most maxHandshakes) may hold slots beyond the connection cap.
    // Below that, the server itself caps the handshakes in progress (queued, then dropped).
    socket.admitNewConnection = () => connectionMapOf(socket).size < maxConnections + maxHandshakes;
    const srv = new QUICServer({
      crypto: await serverQuicCrypto(),
      config: serverQuicConfig(components.cert, core.idleTimeoutMs),
      socket,
      logger: core.logger.getChild("server"),
      minIdleTimeout: QUIC_HANDSHAKE_TIMEOUT_MS,
      maxHandshakesInProgress: maxHandshakes,
      reasonToCode: (type, reason) => streamReasonToCode(type, reason),
      codeToReason: (type, code) => streamCodeToReason(type, code),
    });
    srv.addEventListener(quicEvents.EventQUICServerConnection.name, onConnection);
    try {
      await srv.start();
    } catch (err) {
      await core.closeAll();
      throw err;
    }
    server = srv;
    log?.info("UDP endpoint listening", { address: formatAddress(socket.host, socket.port) });
  }

  async function doStop(): Promise<void> {
    core.abortAll();
    const srv = server;
    server = undefined;
    if (srv) {
      handshakeCounts.dropped += srv.handshakesDropped;
      handshakeCounts.duplicates += srv.duplicateInitialsDropped;
      srv.removeEventListener(quicEvents.EventQUICServerConnection.name, onConnection);
      await srv.stop({ isApp: true, errorCode: QUIC_CLOSE_NORMAL, force: true }).catch((err) => log?.warn("QUIC server did not stop cleanly", { error: errorLine(err) }));
    }
    await core.closeAll();
    inbound.clear();
    perIp.clear();
  }

  return {
    start: () =>
      serial(async () => {
        if (running) return;
        removeRoutes = router.addAll(appBootstrapRoutes(components, ["quic"]));
        try {
          await doStart();
        } catch (err) {
          removeRoutes();
          throw err;
        }
        running = true;
      }),
    stop: () =>
      serial(async () => {
        if (!running) return;
        running = false;
        removeRoutes?.();
        await doStop();
      }),
    get port() {
      return core.socket?.port ?? init.port;
    },
    get host() {
      return core.socket?.host ?? init.host;
    },
    async sendRaw(bytes, port, ip) {
      const socket = core.socket;
      if (!socket) throw new Error(`Cannot send to ${formatAddress(ip, port)}: the UDP endpoint is not running`);
      await socket.sendRaw(bytes, port, ip);
    },
    sendRawNow(bytes, port, ip) {
      core.socket?.sendRawNow(bytes, port, ip);
    },
    router,
    on: (event, fn) => core.on(event, fn),
    links: () => [...core.links.values()],
    dial: (addr, opts) => core.dial(addr, opts),
    counters() {
      return {
        ...core.counters(),
        activeConnections: inbound.size,
        handshakesInProgress: server?.handshakesInProgress ?? 0,
        handshakesDropped: handshakeCounts.dropped + (server?.handshakesDropped ?? 0),
        duplicateInitials: handshakeCounts.duplicates + (server?.duplicateInitialsDropped ?? 0),
      };
    },
  };
}
