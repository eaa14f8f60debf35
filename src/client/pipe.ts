// A TCP pipe through a punched link, as `ssh -L` does it: the exposing side offers ONE local TCP address to the
// peers that punch it; the forwarding side listens locally and carries each accepted TCP connection as one
// raw QUIC stream (protocol PIPE_PROTOCOL) to the peer, which connects it to its exposed address. The stream
// names no target, so a peer can reach the exposed address and nothing else on the exposing machine.
import { createServer, connect, type AddressInfo, type Server, type Socket } from "node:net";
import { PeerError, errorLine } from "../errors.ts";
import { formatAddress } from "../contracts/index.ts";
import type { Membership } from "./membership.ts";
import type { PeerConnection, PeerStream } from "./connection.ts";

/** Protocol name of pipe streams. */
export const PIPE_PROTOCOL = "findings-pipe/1";
/** How long a forwarded TCP connection waits for a link to the peer (a re-punch after a re-mapping), in ms. */
const PIPE_CONNECT_TIMEOUT_MS = 20_000;

/** One TCP connection through the pipe, reported when it ends (`findings punch --json` prints it as is). */
export interface PipeConnection {
  pipe: "expose" | "forward";
  /** Sequence number of the connection at this end, from 1. */
  conn: number;
  /** The peer's node id. */
  peer: string;
  /** Who connected: the local TCP client (forward) or the peer's address on the link (expose). */
  from: string;
  /** Where it went: the peer's address on the link (forward) or the exposed address (expose). */
  to: string;
  /** Bytes from the connecting client towards the exposed service, and back. */
  bytesUp: number;
  bytesDown: number;
  ms: number;
  ok: boolean;
  error?: string;
}

export interface PipeOptions {
  /** Each connection, when it ends. */
  onConnection?: (c: PipeConnection) => void;
}

/** Copies bytes both ways until both sides finished (FIN each way) or one failed (then both are torn down). */
export async function bridge(socket: Socket, stream: PeerStream): Promise<{ up: number; down: number; error?: string }> {
  let up = 0;
  let down = 0;
  let error: string | undefined;
  const writer = stream.writable.getWriter();
  const fail = (err: unknown) => {
    if (error !== undefined) return;
    error = errorLine(err);
    stream.reset();
    socket.destroy();
  };
  const upDone = new Promise<void>((resolve) => {
    socket.on("data", (chunk: Buffer) => {
      up += chunk.length;
      writer.write(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length)).catch(fail);
      if ((writer.desiredSize ?? 1) <= 0) {
        socket.pause();
        writer.ready.then(() => socket.resume(), fail);
      }
    });
    socket.on("end", () => writer.close().then(resolve, (e) => (fail(e), resolve())));
    socket.on("error", (e) => (fail(e), resolve()));
    socket.on("close", () => resolve());
  });
  const downDone = (async () => {
    const reader = stream.readable.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        if (socket.destroyed) throw new PeerError("the TCP connection is gone");
        down += value.length;
        if (!socket.write(value)) {
          await new Promise<void>((r) => {
            const go = () => {
              socket.off("drain", go);
              socket.off("close", go);
              r();
            };
            socket.on("drain", go);
            socket.on("close", go);
          });
        }
      }
      socket.end();
    } catch (err) {
      fail(err);
    }
  })();
  await Promise.all([upDone, downDone]);
  socket.destroy();
  return { up, down, ...(error !== undefined ? { error } : {}) };
}

/** Offers `target` to every peer connection of the membership (now and later): each pipe stream becomes
 *  one TCP connection to `target`. Streams of other protocols are reset. */
export function expose(membership: Membership, target: { host: string; port: number }, opts: PipeOptions = {}): { stop(): void } {
  let seq = 0;
  let stopped = false;
  const to = formatAddress(target.host, target.port);
  const take = (conn: PeerConnection) =>
    conn.onStream((stream) => {
      if (stopped || stream.protocol !== PIPE_PROTOCOL) return stream.reset();
      const n = ++seq;
      const t0 = performance.now();
      const socket = connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
      const report = (r: { up: number; down: number; error?: string }) =>
        opts.onConnection?.({ pipe: "expose", conn: n, peer: conn.peerId, from: conn.remote, to, bytesUp: r.up, bytesDown: r.down, ms: Math.round(performance.now() - t0), ok: r.error === undefined, ...(r.error !== undefined ? { error: r.error } : {}) });
      let connected = false;
      socket.once("connect", () => {
        connected = true;
        void bridge(socket, stream).then(report);
      });
      socket.once("error", (err) => {
        if (connected) return;
        stream.reset();
        report({ up: 0, down: 0, error: `cannot connect to ${to}: ${errorLine(err)}` });
      });
    });
  for (const c of membership.connections()) take(c);
  const off = membership.on("peer", take);
  return {
    stop() {
      stopped = true;
      off();
    },
  };
}

export interface Forwarder {
  /** The local address it listens on, "host:port". */
  readonly address: string;
  readonly port: number;
  close(): Promise<void>;
}

/** Listens on `listen` and carries each accepted TCP connection to the peer `peerId` (punched now if there is
 *  no live connection; after a re-mapping the membership's newest connection is used). */
export async function forward(membership: Membership, peerId: string, listen: { host: string; port: number }, opts: PipeOptions = {}): Promise<Forwarder> {
  let seq = 0;
  let pending: Promise<PeerConnection> | undefined;
  const connection = (signal: AbortSignal): Promise<PeerConnection> => {
    const live = membership.connection(peerId);
    if (live) return Promise.resolve(live);
    pending ??= membership.punch(peerId, { signal }).finally(() => (pending = undefined));
    return pending;
  };
  const server: Server = createServer({ allowHalfOpen: true, pauseOnConnect: true, noDelay: true }, (socket) => {
    const n = ++seq;
    const t0 = performance.now();
    const from = formatAddress(socket.remoteAddress ?? "?", socket.remotePort ?? 0);
    let to = "";
    const report = (r: { up: number; down: number; error?: string }) =>
      opts.onConnection?.({ pipe: "forward", conn: n, peer: peerId, from, to, bytesUp: r.up, bytesDown: r.down, ms: Math.round(performance.now() - t0), ok: r.error === undefined, ...(r.error !== undefined ? { error: r.error } : {}) });
    socket.on("error", () => {});
    void (async () => {
      let stream: PeerStream;
      try {
        const signal = AbortSignal.timeout(PIPE_CONNECT_TIMEOUT_MS);
        const conn = await connection(signal);
        to = conn.remote;
        stream = await conn.openStream(PIPE_PROTOCOL, { signal });
      } catch (err) {
        socket.destroy();
        report({ up: 0, down: 0, error: `no link to the peer: ${errorLine(err)}` });
        return;
      }
      socket.resume();
      report(await bridge(socket, stream));
    })();
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(listen.port, listen.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const addr = server.address() as AddressInfo;
  return {
    address: formatAddress(addr.address, addr.port),
    port: addr.port,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
