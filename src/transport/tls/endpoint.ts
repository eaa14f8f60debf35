// The TLS port (DESIGN §2 server_tport): one listener with the per-run self-signed certificate
// (DESIGN §3) serving HTTP/2 and HTTP/1.1 routes (GET /whoami) and WebSocket upgrades
// (wss://host:port/mesh), with connection, link, handshake and idle limits.
import { STATUS_CODES, type IncomingMessage } from "node:http";
import * as http2 from "node:http2";
import type { Socket } from "node:net";
import type { TLSSocket } from "node:tls";
import { DEFAULTS } from "../../config/index.ts";
import { MAX_ENVELOPE_BYTES, MAX_WS_FRAME_BYTES, TLS_HANDSHAKE_TIMEOUT_MS } from "../../constants.ts";
import { ConfigError } from "../../errors.ts";
import { spkiOfDer, type RunCertificate } from "../../identity/index.ts";
import { createHttpRouter, type HttpRouteTable } from "./https-routes.ts";
import { WHOAMI_PATH, whoamiHandler } from "./https-whoami.ts";
import { formatAddress, localOf, remoteOf, type HostPort } from "../../contracts/index.ts";
import { WS_CLOSE } from "../ws/constants.ts";
import { MAX_RATE_BUCKETS, prefixOf, type RateLimit, TokenBuckets } from "../../rpc/index.ts";
import type { WsConnection } from "../ws/connection.ts";
import { createWsAcceptor } from "../ws/server.ts";
import { silentLogger, type Logger } from "../../contracts/index.ts";

/** TCP connections held at once (handshaking, HTTP and WebSocket together); more are dropped at
 *  accept. One costs a few KB of TLS state; 1024 is far above 16 mesh links plus whoami traffic. */
const DEFAULT_TLS_MAX_CONNECTIONS = 1024;
/** Largest HTTP request body a route receives; routes carry small JSON or one envelope. */
const MAX_HTTP_BODY_BYTES = MAX_ENVELOPE_BYTES;
/** Concurrent HTTP/2 streams per connection: whoami needs one; a few dozen bounds the memory a
 *  single client can hold. */
const H2_MAX_CONCURRENT_STREAMS = 32;
/** How long stop() waits for WebSocket close handshakes before destroying the sockets, in ms. */
const TLS_STOP_GRACE_MS = 1_000;
/** After a refusal is written on an upgrade socket, it is destroyed after this long, in ms, if the
 *  client has not closed it. */
const WS_REFUSAL_LINGER_MS = 1_000;

export interface TlsEndpointComponents {
  cert: RunCertificate;
  log?: Logger;
}

export interface TlsEndpointInit {
  /** Address to bind: an IP, "0.0.0.0" or "::" (dual stack). */
  host: string;
  /** TCP port; 0 picks a free one (read it from `port` after start). */
  port: number;
  /** @default DEFAULT_TLS_MAX_CONNECTIONS */
  maxConnections?: number;
  /** TCP connections from one IP at once, so one host cannot take every slot. @default max_conns_per_ip of defaults.toml */
  maxConnectionsPerIp?: number;
  /** WebSocket links at once; upgrades beyond it get 503. @default max_mesh_links of defaults.toml */
  maxLinks?: number;
  /** WebSocket links from one IP at once; upgrades beyond it get 429. @default max_links_per_ip of defaults.toml */
  maxLinksPerIp?: number;
  /** A client that has not finished the TLS handshake by then is dropped. @default TLS_HANDSHAKE_TIMEOUT_MS */
  handshakeTimeoutMs?: number;
  /** Silence after which a WebSocket link is closed (pings at a third of it). @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  /** Silence after which a plain HTTP connection is closed. @default idleTimeoutMs */
  httpIdleTimeoutMs?: number;
  /** @default MAX_WS_FRAME_BYTES */
  maxFrameBytes?: number;
  /** New TCP connections accepted per source, before the TLS handshake (which costs us a signature):
   *  token buckets per host (IPv4 /32, IPv6 /64) and per network (/24, /48). @default CONNECTION_RATE */
  connectionRate?: readonly RateLimit[];
}

/** New connections per second a host, and its /24 or /48, may open: far above what a node or an app needs
 *  (a few per minute), low enough that a reconnecting flood from one network is bounded. */
export const CONNECTION_RATE: readonly RateLimit[] = [
  { ratePerS: 10, burst: 50, v4Bits: 32, v6Bits: 64 },
  { ratePerS: 20, burst: 200, v4Bits: 24, v6Bits: 48 },
];

export interface WsUpgradeInfo {
  readonly path: string;
  readonly remote: HostPort;
  readonly local: HostPort;
  /** SPKI of the TLS client certificate, when the client showed one (our own dialler does). It is
   *  proven only in that the client holds the certificate's key; who that is, the mesh decides. */
  readonly clientSpki: string | null;
}

/** Takes ownership of an accepted WebSocket: it must call conn.start() (or close it). */
export type WsUpgradeHandler = (conn: WsConnection, info: WsUpgradeInfo) => void;

export interface TlsEndpoint {
  start(): Promise<void>;
  /** Closes every link (1001), then the listener; resolves when no socket is left. */
  stop(): Promise<void>;
  readonly host: string;
  /** Bound port (the configured one before start). */
  readonly port: number;
  /** SPKI of the certificate this endpoint shows. */
  readonly spki: string;
  readonly routes: HttpRouteTable;
  /** Accepts WebSocket upgrades on `path` (e.g. "/mesh"); other paths are refused with 404. */
  onWebSocket(path: string, handler: WsUpgradeHandler): void;
  /** Live counts, for status pages and tests. */
  /** refusedRate: connections dropped by the per-source connection rate (before the TLS handshake). */
  counts(): { connections: number; links: number; tlsErrors: number; refusedUpgrades: number; refusedRate: number };
}

export function createTlsEndpoint(components: TlsEndpointComponents, init: TlsEndpointInit): TlsEndpoint {
  const log = components.log ?? silentLogger;
  const maxConnections = init.maxConnections ?? DEFAULT_TLS_MAX_CONNECTIONS;
  const maxConnectionsPerIp = init.maxConnectionsPerIp ?? DEFAULTS.max_conns_per_ip;
  const maxLinks = init.maxLinks ?? DEFAULTS.max_mesh_links;
  const maxLinksPerIp = init.maxLinksPerIp ?? DEFAULTS.max_links_per_ip;
  const handshakeTimeoutMs = init.handshakeTimeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  const idleTimeoutMs = init.idleTimeoutMs ?? DEFAULTS.idle_timeout_s * 1000;
  const httpIdleTimeoutMs = init.httpIdleTimeoutMs ?? idleTimeoutMs;
  const maxFrameBytes = init.maxFrameBytes ?? MAX_WS_FRAME_BYTES;
  const connectionRate = init.connectionRate ?? CONNECTION_RATE;
  const connectionBuckets = new TokenBuckets(MAX_RATE_BUCKETS);
  let refusedRate = 0;

  const router = createHttpRouter({ maxBodyBytes: MAX_HTTP_BODY_BYTES, log });
  router.add("GET", WHOAMI_PATH, whoamiHandler);
  const wsHandlers = new Map<string, WsUpgradeHandler>();
  const acceptor = createWsAcceptor({ maxFrameBytes, idleTimeoutMs, log });

  const sockets = new Set<Socket>();
  const socketsPerIp = new Map<string, number>();
  const links = new Set<WsConnection>();
  const linksPerIp = new Map<string, number>();
  let tlsErrors = 0;
  let refusedUpgrades = 0;

  let server: http2.Http2SecureServer | null = null;
  let boundPort = init.port;
  let starting: Promise<void> | null = null;
  let stopping: Promise<void> | null = null;

  function bump(map: Map<string, number>, key: string, by: number): number {
    const n = (map.get(key) ?? 0) + by;
    if (n <= 0) map.delete(key);
    else map.set(key, n);
    return n;
  }

  /** A token from every connection bucket of `ip`, or none when one is empty. */
  function takeConnectionToken(ip: string): boolean {
    const t = Date.now();
    const keys = connectionRate.map((r, i) => `${i}|${prefixOf(ip, r.v4Bits ?? 32, r.v6Bits ?? 64)}`);
    if (!connectionRate.every((r, i) => connectionBuckets.has(keys[i]!, r.ratePerS, r.burst, t))) return false;
    connectionRate.forEach((r, i) => connectionBuckets.take(keys[i]!, r.ratePerS, r.burst, t));
    return true;
  }

  function onConnection(socket: Socket): void {
    // Counted per host: an IPv4 address, an IPv6 /64 (one host's share of addresses).
    const ip = prefixOf(remoteOf(socket).ip, 32, 64);
    // Errors on a socket are the peer's problem; without a listener they would be thrown.
    socket.on("error", () => {});
    if (!takeConnectionToken(remoteOf(socket).ip)) {
      refusedRate += 1;
      socket.destroy();
      return;
    }
    if (stopping || sockets.size >= maxConnections || (socketsPerIp.get(ip) ?? 0) >= maxConnectionsPerIp) {
      log.debug("tls connection refused: limit", { ip, connections: sockets.size });
      socket.destroy();
      return;
    }
    sockets.add(socket);
    bump(socketsPerIp, ip, 1);
    socket.once("close", () => {
      sockets.delete(socket);
      bump(socketsPerIp, ip, -1);
    });
  }

  function onSecureConnection(socket: TLSSocket): void {
    // An HTTP connection that goes quiet is closed; an upgrade clears this (the link has its own).
    socket.setTimeout(httpIdleTimeoutMs, () => socket.destroy());
  }

  function onTlsClientError(err: Error & { code?: string }, socket: TLSSocket): void {
    tlsErrors += 1;
    log.debug("tls client error", { remote: formatAddress(remoteOf(socket)), code: err.code ?? err.message });
    socket.destroy();
  }

  function refuse(socket: Socket, status: number, reason: string): void {
    refusedUpgrades += 1;
    log.debug("websocket upgrade refused", { remote: formatAddress(remoteOf(socket)), status, reason });
    if (socket.destroyed) return;
    const body = `${reason}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? "Error"}\r\nConnection: close\r\n` +
        `Content-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), WS_REFUSAL_LINGER_MS).unref();
  }

  function onUpgrade(req: http2.Http2ServerRequest, socket: Socket, head: Buffer): void {
    try {
      handleUpgrade(req, socket, head);
    } catch (err) {
      log.warn("websocket upgrade failed", { error: err instanceof Error ? err.message : String(err) });
      socket.destroy();
    }
  }

  function handleUpgrade(req: http2.Http2ServerRequest, socket: Socket, head: Buffer): void {
    socket.on("error", () => {});
    if (stopping) return refuse(socket, 503, "server is stopping");
    let path: string;
    try {
      path = new URL(req.url ?? "/", "https://findings.invalid").pathname;
    } catch {
      return refuse(socket, 400, "bad request target");
    }
    const handler = wsHandlers.get(path);
    if (!handler) return refuse(socket, 404, "no WebSocket endpoint here");
    const remote = remoteOf(socket);
    if (links.size >= maxLinks) return refuse(socket, 503, "link limit reached");
    const host = prefixOf(remote.ip, 32, 64);
    if ((linksPerIp.get(host) ?? 0) >= maxLinksPerIp) return refuse(socket, 429, "too many links from this address");

    // Read before the upgrade: the certificate is the TLS session's, the socket may go at any time.
    let clientSpki: string | null = null;
    try {
      const raw = (socket as TLSSocket).getPeerCertificate?.(true)?.raw;
      if (raw?.length) clientSpki = spkiOfDer(new Uint8Array(raw));
    } catch {
      // An unparsable client certificate is the same as none: the mesh layer does not rely on it.
    }
    // `ws` checks the request itself and answers a bad one with an HTTP error.
    const conn = acceptor.accept(req as unknown as IncomingMessage, socket, head);
    if (!conn) {
      refusedUpgrades += 1;
      log.debug("websocket upgrade refused by ws", { remote: formatAddress(remote), path });
      return;
    }
    links.add(conn);
    bump(linksPerIp, host, 1);
    void conn.closed.then(() => {
      links.delete(conn);
      bump(linksPerIp, host, -1);
    });
    try {
      handler(conn, { path, remote, local: localOf(socket), clientSpki });
    } catch (err) {
      log.warn("websocket handler threw", { path, error: err instanceof Error ? err.message : String(err) });
      conn.close(WS_CLOSE.internalError, "internal error");
    }
  }

  async function doStart(): Promise<void> {
    const srv = http2.createSecureServer({
      key: components.cert.keyPem,
      cert: components.cert.certPem,
      allowHTTP1: true,
      // Ask for a client certificate but accept none: our dialler shows its run certificate so the
      // mesh can record the peer's SPKI; curl and apps show nothing and are served all the same.
      requestCert: true,
      rejectUnauthorized: false,
      handshakeTimeout: handshakeTimeoutMs,
      settings: { maxConcurrentStreams: H2_MAX_CONCURRENT_STREAMS },
    });
    srv.on("connection", onConnection);
    srv.on("secureConnection", onSecureConnection);
    srv.on("tlsClientError", onTlsClientError);
    srv.on("upgrade", onUpgrade);
    srv.on("request", (req, res) => router.serve(req, res));
    srv.on("sessionError", (err) => log.debug("http2 session error", { error: err.message }));
    srv.on("error", (err) => log.warn("tls server error", { error: err.message }));
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error & { code?: string }) =>
        reject(new ConfigError("server_tport", `cannot listen on ${formatAddress({ ip: init.host, port: init.port })}: ${err.code ?? err.message}`));
      srv.once("error", onError);
      srv.listen(init.port, init.host, () => {
        srv.off("error", onError);
        resolve();
      });
    });
    const addr = srv.address();
    if (addr && typeof addr === "object") boundPort = addr.port;
    server = srv;
    log.info("tls endpoint listening", { address: formatAddress({ ip: init.host, port: boundPort }), spki: components.cert.spki });
  }

  async function doStop(): Promise<void> {
    if (starting) await starting.catch(() => {});
    const srv = server;
    if (!srv) return;
    const closedServer = new Promise<void>((resolve) => srv.close(() => resolve()));
    for (const conn of links) conn.close(WS_CLOSE.goingAway, "server stopping");
    const linksGone = Promise.all([...links].map((c) => c.closed));
    await withinMs(linksGone, TLS_STOP_GRACE_MS);
    for (const s of sockets) s.destroy();
    await closedServer;
    server = null;
    log.info("tls endpoint stopped", { port: boundPort });
  }

  return {
    start() {
      if (stopping) return Promise.reject(new Error("TlsEndpoint cannot start again after stop()"));
      starting ??= doStart();
      return starting;
    },
    stop() {
      stopping ??= doStop();
      return stopping;
    },
    get host() {
      return init.host;
    },
    get port() {
      return boundPort;
    },
    spki: components.cert.spki,
    routes: router,
    onWebSocket(path, handler) {
      wsHandlers.set(path, handler);
    },
    counts() {
      return { connections: sockets.size, links: links.size, tlsErrors, refusedUpgrades, refusedRate };
    },
  };
}

/** Waits for `p` at most `ms`; the timer is cleared either way so stop() leaves nothing behind. */
async function withinMs(p: Promise<unknown>, ms: number): Promise<void> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([p, new Promise<void>((r) => (timer = setTimeout(r, ms)))]);
  clearTimeout(timer);
}
