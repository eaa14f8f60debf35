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
  /** Peer address as this end sees it (IPv4-mapped IPv6 reported as IPv4). */
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
  pinned: boolean;
  peerKey?: Uint8Array;
}

interface NativePathStats {
  rtt: number;
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
  const native = (conn as unknown as { conn: { peerStreamsLeftBidi(): number; pathStats(): NativePathStats[]; applicationProto(): Uint8Array } }).conn;
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
        const rtt = native.pathStats()[0]?.rtt;
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

