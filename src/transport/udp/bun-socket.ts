// A UDP socket on Bun.udpSocket with the slice of the node:dgram surface that @matrixai/quic's QUICSocket
// uses (bind, close, address, send, 'error'/'message' listeners), so the shared socket can hand it to the
// QUIC library in place of node:dgram (shared-socket.ts).
//
// Why not node:dgram: Bun's node:dgram is a JavaScript layer over the same Bun.udpSocket, and every
// datagram pays for it: an EventEmitter 'message' event and an rinfo object per datagram received; per
// datagram sent, argument checks, a DNS lookup step (even for an IP), a request object and a callback
// turn. Here received datagrams go straight to one function, and sends leave in one sendMany (sendmmsg)
// per event-loop turn.
import { EventEmitter } from "node:events";
import { setSocketBuffers } from "./socket-buffers.ts";

/** Receives every datagram: `address` as the socket reports it (an IPv4 peer of a dual-stack socket is
 *  `::ffff:a.b.c.d` with `ipv6` true), `buf` owned by the callee (Bun allocates one per datagram). */
export type DatagramReceiver = (buf: Buffer, port: number, address: string, ipv6: boolean) => void;

export interface BunDatagramSocketInit {
  reuseAddr?: boolean;
  ipv6Only?: boolean;
  /** Kernel buffers asked for after bind, in bytes (Linux caps them at net.core.rmem_max / wmem_max). */
  recvBufferBytes?: number;
  sendBufferBytes?: number;
  onDatagram: DatagramReceiver;
  /** A datagram lost on send (refused, unreachable, bad target) or an error the socket reports (an ICMP
   *  port-unreachable read from the error queue): one lost datagram, never fatal. */
  onError: (err: unknown) => void;
  /** A datagram dropped because the send queue was full while the kernel buffer was. */
  onSendDropped: () => void;
}

/** Datagrams held while the kernel send buffer is full (then each new one is dropped and counted). At the
 *  QUIC payload size this is ~5 MiB; a peer's loss recovery resends what is dropped. */
const MAX_QUEUED_DATAGRAMS = 4096;

/** node:dgram's bind flags for Bun.udpSocket (undocumented `flags` option, the values node:dgram passes). */
const BIND_IPV6_ONLY = 8;
const BIND_REUSE_ADDR = 16;
const BIND_DISALLOW_REUSE_PORT_FAILURE = 32;

type Packet = Uint8Array | number | string;

export class BunDatagramSocket extends EventEmitter {
  /** What node:dgram's createSocket was asked for: "udp4" or "udp6". */
  readonly type: string;
  private socket: Bun.udp.Socket<"buffer"> | undefined;
  /** Datagrams waiting for the next flush, as (bytes, port, address) triples: sendMany's own format. */
  private queue: Packet[] = [];
  private flushScheduled = false;
  private waitingForDrain = false;
  private readonly flushSoon = () => {
    this.flushScheduled = false;
    this.flush();
  };

  constructor(type: string, private readonly init: BunDatagramSocketInit) {
    super();
    this.type = type;
  }

  /** node:dgram's bind(port, address, callback), the form QUICSocket promisifies. */
  bind(port: number, address: string, callback: (err?: Error | null) => void): void {
    const flags = BIND_DISALLOW_REUSE_PORT_FAILURE | (this.init.reuseAddr ? BIND_REUSE_ADDR : 0) | (this.init.ipv6Only ? BIND_IPV6_ONLY : 0);
    const onDatagram = this.init.onDatagram;
    const options = {
      hostname: address,
      port,
      flags,
      socket: {
        data: (_socket: unknown, buf: Buffer, fromPort: number, fromAddress: string, info: Bun.udp.ReceiveFlags) => {
          // A datagram longer than Bun's receive buffer is cut: never half a message to a parser.
          if (info.truncated) return this.init.onError(Object.assign(new Error("truncated datagram"), { code: "EMSGSIZE" }));
          onDatagram(buf, fromPort, fromAddress, info.ipv6);
        },
        drain: () => this.drained(),
        // Bun passes the error alone (node:dgram's own layer reads it so), not (socket, error) as its types say.
        error: (a: unknown, b?: unknown) => this.init.onError(a instanceof Error ? a : b),
      },
    };
    Bun.udpSocket(options as Bun.udp.SocketOptions<"buffer">).then(
      async (socket) => {
        this.socket = socket;
        const fd = (socket as unknown as { fd?: unknown }).fd;
        if (typeof fd === "number" && (this.init.recvBufferBytes || this.init.sendBufferBytes)) {
          await setSocketBuffers(fd, this.init.recvBufferBytes ?? 0, this.init.sendBufferBytes ?? 0);
        }
        this.emit("listening");
        callback(null);
      },
      (err: Error) => callback(err),
    );
  }

  /** node:dgram's address(). */
  address(): { address: string; family: string; port: number } {
    if (!this.socket) throw Object.assign(new Error("getsockname EBADF"), { code: "EBADF" });
    return this.socket.address;
  }

  /** Sends what is queued, then closes. */
  close(callback?: () => void): void {
    const socket = this.socket;
    if (socket && !socket.closed) {
      this.flush();
      socket.close();
    }
    this.socket = undefined;
    this.queue = [];
    this.emit("close");
    if (callback) queueMicrotask(callback);
  }

  /** node:dgram's send(msg, [offset, length,] port, address, callback): queued like enqueue(). */
  send(...params: Array<any>): void {
    const callback = typeof params[params.length - 1] === "function" ? params.pop() : undefined;
    let bytes = params[0] as Uint8Array;
    if (params.length === 5) bytes = bytes.subarray(params[1], params[1] + params[2]);
    const [port, address] = params.length === 5 ? [params[3], params[4]] : [params[1], params[2]];
    this.enqueue(bytes, port, address);
    if (callback) queueMicrotask(() => callback(null, bytes.length));
  }

  /** Queues one datagram for this turn's sendMany. `bytes` must stay unchanged until then (QUIC and the
   *  STUN responder hand over fresh buffers). */
  enqueue(bytes: Uint8Array, port: number, address: string): void {
    if (!this.socket) return;
    // sendMany refuses a whole batch for one bad port (a spoofed source port 0 answered): refuse it here.
    if (!(port > 0 && port <= 65535 && Number.isInteger(port))) return this.init.onError(Object.assign(new Error(`send to port ${port}`), { code: "EINVAL" }));
    if (this.queue.length >= MAX_QUEUED_DATAGRAMS * 3) return this.init.onSendDropped();
    this.queue.push(bytes, port, address);
    if (!this.flushScheduled && !this.waitingForDrain) {
      this.flushScheduled = true;
      setImmediate(this.flushSoon);
    }
  }

  /**
   * Sends one datagram now (Bun copies it before returning, so the caller may reuse `bytes`). Returns false
   * when it was queued or dropped instead (the kernel buffer is full). Throws what the kernel refuses for
   * this datagram (a bad target, a broadcast address); lost-datagram errors are reported via onError.
   */
  sendNow(bytes: Uint8Array, port: number, address: string): boolean {
    const socket = this.socket;
    if (!socket) throw Object.assign(new Error("send EBADF: the socket is closed"), { code: "EBADF" });
    if (this.queue.length === 0) {
      const sent = this.trySend(socket, bytes, port, address, true);
      if (sent !== false) return sent;
    }
    this.enqueue(Uint8Array.from(bytes), port, address);
    return false;
  }

  /** The kernel's send buffer has room again (Bun's drain event): sends what waited. */
  drained(): void {
    this.waitingForDrain = false;
    this.flush();
  }

  /** Sends the queue in as few sendMany calls as the kernel allows. */
  flush(): void {
    const socket = this.socket;
    const queue = this.queue;
    if (!socket || queue.length === 0 || this.waitingForDrain) return;
    let at = 0;
    let batched = true;
    while (at < queue.length) {
      let sent = 0;
      if (batched) {
        try {
          sent = socket.sendMany(at === 0 ? queue : queue.slice(at));
        } catch {
          // sendMany throws when the first datagram fails, or for a bad argument anywhere in the batch (then
          // nothing was sent): the rest of this flush goes one by one, so one bad datagram costs linear time.
          batched = false;
        }
      }
      at += sent * 3;
      if (at >= queue.length) break;
      // sendmmsg stopped at this datagram: a full kernel buffer (wait for drain) or an error of its own.
      const one = this.trySend(socket, queue[at] as Uint8Array, queue[at + 1] as number, queue[at + 2] as string, false);
      if (one === false) {
        this.queue = queue.slice(at);
        this.waitingForDrain = true;
        return;
      }
      at += 3;
    }
    queue.length = 0;
  }

  /** One send: false when the kernel buffer is full, else true (sent, or lost with an error that is reported
   *  to onError). With `throwHard`, errors that are not about one lost datagram are thrown instead. */
  private trySend(socket: Bun.udp.Socket<"buffer">, bytes: Uint8Array, port: number, address: string, throwHard: boolean): boolean {
    for (let attempt = 0; ; attempt++) {
      try {
        return socket.send(bytes, port, address);
      } catch (err) {
        if (throwHard && !isLostDatagramError(err)) throw err;
        this.init.onError(err);
        // ECONNREFUSED on a send reports an earlier datagram's ICMP port-unreachable (the socket sets
        // IP_RECVERR), so this one was never sent: send it once more. (Seen in the NAT lab: an expired
        // mapping's probe makes the router answer ICMP, and the next lifetime probe was silently lost.)
        if (attempt > 0 || (err as { code?: string }).code !== "ECONNREFUSED") return true;
      }
    }
  }
}

/** Send errors that mean "this datagram was lost", not "the socket is broken" (ICMP reports, a full
 *  queue, a route that is gone for now). */
export function isLostDatagramError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EAGAIN" || code === "ENOBUFS" || code === "EPERM";
}
