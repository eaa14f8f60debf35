// A punched link as an app sees it: a connection to one peer that carries raw bidirectional streams (Web
// Streams), each named by a protocol. Built by membership.ts from the punch client's links.
import { PeerError } from "../errors.ts";
import type { QuicLink, RawStream } from "../transport/index.ts";
import type { PunchResult } from "../punch/index.ts";

/** One bidirectional byte stream to a peer. `readable` ends at the peer's FIN; `writable.close()` sends
 *  ours; `reset()` aborts both ways. */
export type PeerStream = RawStream;

/** The protocol a stream gets when the opener names none. */
export const DEFAULT_STREAM_PROTOCOL = "app";
/** Streams the peer opened before the app took them (onStream); more are reset. */
const MAX_QUEUED_STREAMS = 16;

export interface PeerConnection {
  /** The peer's node id (hex SHA-256 of its X25519 key). */
  readonly peerId: string;
  /** The app kind whose pool brought us together. */
  readonly kind: string;
  /** The peer's address on this link, "ip:port". */
  readonly remote: string;
  /** How the hole was punched: strategy, role, timings (the `findings punch --json` object). */
  readonly result: PunchResult;
  /** Smoothed RTT of the path in ms, once measured. */
  readonly rttMs: number | undefined;
  readonly closed: boolean;
  /** Settles when the link is gone (closed by either side, idled out, or replaced after a re-mapping). */
  readonly whenClosed: Promise<void>;
  /** Opens a stream to the peer; waits for stream credit (at most 64 of ours at once per connection). */
  openStream(protocol?: string, opts?: { signal?: AbortSignal }): Promise<PeerStream>;
  /** Takes the streams the peer opens (queued ones first). One handler; returns a function that removes it. */
  onStream(handler: (stream: PeerStream) => void): () => void;
  /** Closes the link (idempotent); open streams fail. */
  close(): Promise<void>;
}

/** The connection plus what membership.ts needs to drive it. */
export interface ConnectionCore extends PeerConnection {
  deliver(stream: RawStream): void;
  markClosed(): void;
  readonly link: QuicLink;
}

export function createConnection(link: QuicLink, kind: string, result: PunchResult): ConnectionCore {
  let handler: ((s: PeerStream) => void) | undefined;
  const queue: RawStream[] = [];
  let closed = false;
  let resolveClosed!: () => void;
  const whenClosed = new Promise<void>((r) => (resolveClosed = r));
  const give = (s: RawStream) => {
    try {
      handler!(s);
    } catch (err) {
      s.reset(err);
    }
  };
  const conn: ConnectionCore = {
    link,
    peerId: result.peerId ?? "",
    kind,
    remote: `${link.remote.ip.includes(":") ? `[${link.remote.ip}]` : link.remote.ip}:${link.remote.port}`,
    result,
    get rttMs() {
      return link.rttMs;
    },
    get closed() {
      return closed || link.closed;
    },
    whenClosed,
    async openStream(protocol = DEFAULT_STREAM_PROTOCOL, opts = {}) {
      if (conn.closed) throw new PeerError(`Cannot open a stream to ${conn.peerId.slice(0, 16)}: the connection is closed`);
      return link.openStream(protocol, opts);
    },
    onStream(fn) {
      handler = fn;
      for (const s of queue.splice(0)) give(s);
      return () => {
        if (handler === fn) handler = undefined;
      };
    },
    deliver(stream) {
      if (closed) return stream.reset();
      if (handler) return give(stream);
      if (queue.length >= MAX_QUEUED_STREAMS) return stream.reset();
      queue.push(stream);
    },
    markClosed() {
      if (closed) return;
      closed = true;
      for (const s of queue.splice(0)) s.reset();
      resolveClosed();
    },
    async close() {
      await link.close();
      conn.markClosed();
    },
  };
  return conn;
}
