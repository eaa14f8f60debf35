// A QUIC connection seen as a Findings link: requests over it, its peer, its pin state (DESIGN §3–§4).
import type { QUICConnection, QUICStream } from "@matrixai/quic";
import { PeerError } from "../../errors.ts";
import { Status, statusName, type Envelope } from "../../wire/index.ts";
import { formatAddress, unmapIp } from "../../contracts/index.ts";
import { MAX_QUIC_STREAMS_PER_CONNECTION } from "./constants.ts";
import { requestOverStream, StreamGate, type RequestOptions } from "./request.ts";
import { MuxClient } from "./mux-client.ts";
import { QUIC_ALPN } from "./constants.ts";
import { encodeRawHeader, rawStreamOf, type RawStream } from "./raw-stream.ts";
import { describeQuicError } from "./errors.ts";

export interface QuicLink {
  /** Peer address as this end sees it (IPv4-mapped IPv6 reported as IPv4). It changes only when the peer's
   *  address moved and QUIC validated the new path (RFC 9000 §9: NAT rebinding, migration; see
   *  validatedPeerMove). */
  readonly remote: { ip: string; port: number };
  /** Shared id of the connection: the same value at both ends. */
  readonly connectionId: string;
  /** "out": we dialled; "in": the peer dialled our endpoint. */
  readonly direction: "in" | "out";
  /** Out: dialled with an SPKI pin. In: the app bound this connection after bootstrap (app.bind). */
  readonly pinned: boolean;
  /** The peer's X25519 key, when known. */
  readonly peerKey?: Uint8Array;
  /** SPKI of the peer's certificate (out: the pin, in: undefined — apps present no certificate). */
  readonly spki?: string;
  /** Smoothed RTT of the QUIC path as quiche measures it (RFC 9002 §5.3), in ms; undefined before a sample. */
  readonly rttMs: number | undefined;
  readonly closed: boolean;
  /** Sends one request on the link's request channel (mux-client.ts) and returns the answer Envelope, whatever its status (see expectOk). */
  request(method: string, payload?: Uint8Array, opts?: RequestOptions): Promise<Envelope>;
  /** Opens a raw stream (quic/raw-stream.ts) named `protocol`, waiting for stream credit (shared with
   *  requests: at most MAX_QUIC_STREAMS_PER_CONNECTION of ours at once). */
  openStream(protocol: string, opts?: { signal?: AbortSignal }): Promise<RawStream>;
  /** Closes the connection (idempotent); pending requests fail. */
  close(): Promise<void>;
}

/** The answer's payload when its status is OK; otherwise a PeerError naming the method and status. */
export function expectOk(answer: Envelope): Uint8Array {
  if (answer.status === Status.OK) return answer.payload;
  const why = answer.error ? `: ${answer.error}` : "";
  throw new PeerError(`Peer answered ${answer.method} with ${statusName(answer.status)}${why}`);
}

/** Mutable side of a link, kept by the endpoint (bind marks an inbound link pinned). */
export interface LinkState extends QuicLink {
  remote: { ip: string; port: number };
  pinned: boolean;
  peerKey?: Uint8Array;
}

interface NativeHost {
  host: string;
  port: number;
}

interface NativePathStats {
  rtt: number;
  active: boolean;
  localHost: NativeHost;
  peerHost: NativeHost;
}

/** The parts of quiche's connection this file reads (@matrixai/quic keeps it in a protected field). */
interface NativeConnection {
  peerStreamsLeftBidi(): number;
  pathStats(): NativePathStats[];
  pathEventNext(): unknown;
  isPathValidated(from: NativeHost, to: NativeHost): boolean;
  applicationProto(): Uint8Array;
}

/** Most path events drained per check: quiche queues one per path change, so a handful at most. */
const MAX_PATH_EVENTS_PER_CHECK = 64;

/** The peer's address when quiche's active path now goes elsewhere than `current` and that path is
 *  validated (PATH_CHALLENGE answered from the new address, RFC 9000 §8.2), else null. A datagram from a
 *  spoofed source, or a replayed packet, may make quiche probe a new path, but only the peer that holds the
 *  connection's keys answers the challenge, so it never counts here. Drains quiche's path events (nobody else
 *  reads them) so they do not pile up. */
export function validatedPeerMove(conn: QUICConnection, current: { ip: string; port: number }): { ip: string; port: number } | null {
  const native = nativeOf(conn);
  try {
    for (let i = 0; i < MAX_PATH_EVENTS_PER_CHECK && native.pathEventNext() != null; i++);
    const active = native.pathStats().find((p) => p.active);
    if (!active) return null;
    const peer = { ip: unmapIp(active.peerHost.host), port: active.peerHost.port };
    if (peer.ip === current.ip && peer.port === current.port) return null;
    return native.isPathValidated(active.localHost, active.peerHost) ? peer : null;
  } catch {
    // The connection is closing or closed: no path to report.
    return null;
  }
}

function nativeOf(conn: QUICConnection): NativeConnection {
  return (conn as unknown as { conn: NativeConnection }).conn;
}

/** The ALPN the handshake agreed on ("" when unknown). */
function negotiated(native: { applicationProto(): Uint8Array }): string {
  try {
    return new TextDecoder().decode(native.applicationProto());
  } catch {
    return "";
  }
}

/** Wraps a started QUICConnection. `closeConnection` is how this link ends it (a dialled link destroys its
 *  QUICClient; an accepted one stops the connection). */
export function createQuicLink(
  conn: QUICConnection,
  init: { direction: "in" | "out"; pinned: boolean; peerKey?: Uint8Array; spki?: string; closeConnection: () => Promise<void> },
): LinkState {
  const remote = { ip: unmapIp(conn.remoteHost), port: conn.remotePort };
  const peer = formatAddress(remote.ip, remote.port);
  // @matrixai/quic keeps the quiche connection in a protected field; reading its peer stream credit and
  // path stats is side-effect free.
  const native = nativeOf(conn);
  const gate = new StreamGate(MAX_QUIC_STREAMS_PER_CONNECTION, () => {
    try {
      return native.peerStreamsLeftBidi();
    } catch {
      return 0;
    }
  });
  let nextId = 1n;
  let closing: Promise<void> | undefined;
  let closed = false;
  const linkClosed = new AbortController();
  // Request channels when the peer agreed to findings/2; one stream per request with an older peer. Read at
  // the first request: an accepted connection may still be in its handshake when the link is made.
  let channels: MuxClient | null | undefined;
  void conn.closedP.then(() => {
    closed = true;
    linkClosed.abort(new PeerError(`Cannot finish the request: the link to ${peer} closed`));
  });
  const link: LinkState = {
    remote,
    connectionId: conn.connectionIdShared.toString(),
    direction: init.direction,
    pinned: init.pinned,
    peerKey: init.peerKey,
    spki: init.spki,
    get rttMs() {
      try {
        const stats = native.pathStats();
        const rtt = (stats.find((p) => p.active) ?? stats[0])?.rtt;
        // quiche reports the smoothed RTT as a Duration; the binding gives it in ms.
        return typeof rtt === "number" && rtt > 0 ? rtt : undefined;
      } catch {
        return undefined;
      }
    },
    get closed() {
      return closed || closing !== undefined;
    },
    async request(method, payload, opts = {}) {
      if (link.closed) throw new PeerError(`Cannot send ${method} to ${peer}: the link is closed`);
      const req = { id: nextId++, method, payload };
      if (channels === undefined) {
        const alpn = negotiated(native);
        if (alpn) channels = alpn === QUIC_ALPN ? new MuxClient(conn, gate, peer, linkClosed.signal) : null;
      }
      return channels ? channels.request(req, opts) : requestOverStream(conn, gate, req, { ...opts, peer });
    },
    async openStream(protocol, opts = {}) {
      const header = encodeRawHeader(protocol);
      if (link.closed) throw new PeerError(`Cannot open a stream to ${peer}: the link is closed`);
      const signal = opts.signal ?? new AbortController().signal;
      await gate.acquire(signal);
      let stream: QUICStream;
      try {
        stream = conn.newStream("bidi");
        const writer = stream.writable.getWriter();
        try {
          await writer.write(header);
        } finally {
          writer.releaseLock();
        }
      } catch (err) {
        gate.opened();
        gate.release();
        throw new PeerError(`Cannot open a stream to ${peer}: ${describeQuicError(err)}`, { cause: err });
      }
      gate.opened();
      void stream.closedP.finally(() => gate.release());
      return rawStreamOf(stream, protocol, stream.readable as unknown as ReadableStream<Uint8Array>);
    },
    close() {
      linkClosed.abort(new PeerError(`Cannot finish the request: the link to ${peer} closed`));
      closing ??= init.closeConnection().catch(() => {});
      return closing;
    },
  };
  return link;
}

