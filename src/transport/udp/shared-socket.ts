// The one UDP socket per port shared by the QUIC server, our own QUIC dials and raw datagrams (DESIGN §2).
//
// @matrixai/quic's QUICSocket owns a node:dgram socket and listens with its `handleSocketMessage` arrow
// property. We wrap that property before start() attaches it, so that:
//   - datagrams that are not QUIC (classifyDatagram: fixed bit 0x40 clear) never reach quiche and go to
//     `onRawDatagram` (STUN Binding, SN probes); "unknown" ones are counted and dropped;
//   - brand-new Initial packets are dropped before quiche when `admitNewConnection()` says no (the cheap
//     way to refuse beyond the connection cap: no retry token, no crypto);
//   - nothing thrown while handling network input escapes the 'message' listener. (QUICSocket rethrows
//     unexpected quiche errors from an async listener, which would be an unhandled rejection.)
import { isIP } from "node:net";
import type { RemoteInfo } from "node:dgram";
import { QUICConnectionId, QUICSocket, type QUICConnectionMap } from "@matrixai/quic";
import type Logger from "@matrixai/logger";
import { classifyDatagram, type DatagramKind } from "./classify.ts";
import { unmapIp } from "../../contracts/index.ts";

export interface RawDatagramInfo {
  /** Sender IP; an IPv4-mapped IPv6 sender (dual-stack socket) is reported as plain IPv4. */
  address: string;
  port: number;
  family: "IPv4" | "IPv6";
}

export type RawDatagramHandler = (buf: Uint8Array, rinfo: RawDatagramInfo, kind: Exclude<DatagramKind, "quic" | "unknown">) => void;

export interface SharedSocketCounters {
  /** Datagrams handed to QUIC. */
  quicDatagrams: number;
  /** Datagrams handed to onRawDatagram ("stun" and "sn"). */
  rawDatagrams: number;
  /** Datagrams no handler wants (DESIGN §5 of STYLE: counted, not logged one by one). */
  unknownDatagrams: number;
  /** New-connection Initial packets dropped because admitNewConnection() said no. */
  droppedInitials: number;
  /** Errors thrown while QUIC or the raw handler processed a datagram (contained here). */
  datagramErrors: number;
  /** 'error' events of the socket (e.g. ECONNREFUSED from an ICMP port-unreachable), counted, not fatal. */
  socketErrors: number;
}

export function newSocketCounters(): SharedSocketCounters {
  return { quicDatagrams: 0, rawDatagrams: 0, unknownDatagrams: 0, droppedInitials: 0, datagramErrors: 0, socketErrors: 0 };
}

/** Kernel receive buffer asked for the shared socket, in bytes (see start()). */
const UDP_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** Kernel send buffer asked for the shared socket, in bytes: bursts of answers and probes to many peers. */
const UDP_SEND_BUFFER_BYTES = 1024 * 1024;

const DONE: Promise<void> = Promise.resolve();

const QUIC_VERSION_1 = 0x00000001;
/** RFC 9000 §17.2: the longest connection id in a QUIC v1 long header. */
const MAX_CID_BYTES = 20;

export class SharedUdpSocket extends QUICSocket {
  readonly counters: SharedSocketCounters;
  onRawDatagram?: RawDatagramHandler;
  admitNewConnection?: () => boolean;
  onDatagramError?: (err: unknown) => void;

  /** `counters` may be passed in so they outlive one socket (an endpoint restarted on the same object). */
  constructor(opts: { logger: Logger; onRawDatagram?: RawDatagramHandler; counters?: SharedSocketCounters }) {
    super({ logger: opts.logger });
    this.counters = opts.counters ?? newSocketCounters();
    this.onRawDatagram = opts.onRawDatagram;
    const quicHandler = this.handleSocketMessage;
    // Replaced before start(): QUICSocket.start() attaches whatever this property holds then.
    const handleQuic = async (data: Buffer, remote: RemoteInfo): Promise<void> => {
      try {
        await quicHandler(data, remote);
      } catch (err) {
        this.counters.datagramErrors++;
        this.onDatagramError?.(err);
      }
    };
    // Not an async function: the raw path (STUN Binding at ~100k/s) must not pay for a promise per datagram.
    this.handleSocketMessage = (data: Buffer, remote: RemoteInfo): Promise<void> => {
      const kind = classifyDatagram(data);
      if (kind === "quic") {
        if (this.admitNewConnection && isNewConnectionInitial(data, this) && !this.admitNewConnection()) {
          this.counters.droppedInitials++;
          return DONE;
        }
        this.counters.quicDatagrams++;
        return handleQuic(data, remote);
      }
      if (kind === "unknown" || !this.onRawDatagram) {
        this.counters.unknownDatagrams++;
        return DONE;
      }
      this.counters.rawDatagrams++;
      let address = remote.address;
      let family = remote.family as "IPv4" | "IPv6";
      // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; our API speaks plain IPv4 for them.
      if (family === "IPv6" && address.startsWith("::ffff:") && address.includes(".")) {
        address = address.slice(7);
        family = "IPv4";
      }
      try {
        this.onRawDatagram(data, { address, port: remote.port, family }, kind);
      } catch (err) {
        this.counters.datagramErrors++;
        this.onDatagramError?.(err);
      }
      return DONE;
    };
  }

  /** Starts the socket, then enlarges its kernel buffers: one socket carries every connection, and the
   *  default 208 KiB receive buffer overflows under bursts from many peers while the event loop is busy
   *  (measured: hundreds of RcvbufErrors in scripts/bench/whoami-quic.ts, each one a QUIC retransmit).
   *  Linux caps the request at net.core.rmem_max / wmem_max without an error. */
  override async start(opts: { host?: string; port?: number; reuseAddr?: boolean; ipv6Only?: boolean } = {}): Promise<void> {
    await super.start(opts);
    // QUICSocket attaches no 'error' listener, and node:dgram reports an ICMP port-unreachable (a peer
    // that went away while we answered it) as an ECONNREFUSED 'error' event: unheard, that event kills
    // the process. Network conditions are counted, never fatal.
    this.socket.on("error", (err: Error) => {
      this.counters.socketErrors++;
      this.onDatagramError?.(err);
    });
    // The same ICMP report can also surface as the rejection of the next send() on this socket, which
    // quiche's connection code turns into an internal error thrown from a listener. For UDP a refused or
    // unreachable destination is one lost datagram, which QUIC recovers from: count it, don't throw.
    // ECONNREFUSED on a send reports an earlier datagram's ICMP port-unreachable (Bun's dgram sets
    // IP_RECVERR), so this datagram was never sent: send it once more. (Seen in the NAT lab: an expired
    // mapping's probe makes the router answer ICMP, and the next lifetime probe was silently lost.)
    const send = this.socketSend;
    this.socketSend = async (...params: Array<any>): Promise<number> => {
      for (let attempt = 0; ; attempt++) {
        try {
          return await send(...params);
        } catch (err) {
          if (!isTransientSendError(err)) throw err;
          this.counters.socketErrors++;
          if (attempt > 0 || (err as { code?: string }).code !== "ECONNREFUSED") return 0;
        }
      }
    };
    try {
      this.socket.setRecvBufferSize(UDP_RECV_BUFFER_BYTES);
      this.socket.setSendBufferSize(UDP_SEND_BUFFER_BYTES);
    } catch {
      // Not fatal: the defaults work, only with more loss under load.
    }
  }

  /** Sends one raw datagram now, without a promise (the STUN answer path). `bytes` must not be reused by
   *  the caller: node:dgram may read it after this returns. Errors arrive as counted 'error' events. */
  sendRawNow(bytes: Uint8Array, port: number, ip: string): void {
    const target = this.type === "ipv4&ipv6" && !ip.includes(":") ? `::ffff:${ip}` : ip;
    // No callback: this is the hot path (STUN answers); a lost answer is retried by the client, and
    // send errors arrive as counted 'error' events. Callers that need delivery use sendRaw().
    this.socket.send(bytes, port, target);
  }

  /** Sends one raw datagram from this socket. `bytes` is copied first, so the caller may reuse its buffer
   *  (the STUN responder does). An IPv4 target on a dual-stack socket is sent to its mapped form. */
  async sendRaw(bytes: Uint8Array, port: number, ip: string): Promise<void> {
    const target = this.rawTarget(ip);
    await this.socketSend(Buffer.from(bytes), port, target);
  }

  private rawTarget(ip: string): string {
    const family = isIP(ip);
    if (family === 0) throw new TypeError(`Cannot send to ${ip}: not an IP address`);
    const type = this.type;
    if (type === "ipv4&ipv6") return family === 4 ? `::ffff:${ip}` : ip;
    if (type === "ipv4") {
      const plain = unmapIp(ip);
      if (isIP(plain) !== 4) throw new TypeError(`Cannot send to ${ip} from an IPv4 socket`);
      return plain;
    }
    if (family === 4) throw new TypeError(`Cannot send to ${ip} from an IPv6-only socket`);
    return ip;
  }
}

/** A QUIC v1 long-header Initial packet (RFC 9000 §17.2.2) whose destination connection id is not one of
 *  ours: the only packet that can make the server create a connection. */
function isNewConnectionInitial(data: Uint8Array, socket: QUICSocket): boolean {
  const b0 = data[0]!;
  if ((b0 & 0x80) === 0 || ((b0 & 0x30) >> 4) !== 0 || data.length < 7) return false;
  const version = ((data[1]! << 24) | (data[2]! << 16) | (data[3]! << 8) | data[4]!) >>> 0;
  if (version !== QUIC_VERSION_1) return false;
  const dcidLength = data[5]!;
  if (dcidLength > MAX_CID_BYTES || data.length < 6 + dcidLength) return false;
  const dcid = QUICConnectionId.fromBuffer(Buffer.from(data.buffer, data.byteOffset + 6, dcidLength));
  return !connectionMapOf(socket).has(dcid);
}

/** Send errors that mean "this datagram was lost", not "the socket is broken" (ICMP reports, a full
 *  queue, a route that is gone for now). */
function isTransientSendError(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return code === "ECONNREFUSED" || code === "EHOSTUNREACH" || code === "ENETUNREACH" || code === "EAGAIN" || code === "ENOBUFS" || code === "EPERM";
}

/** QUICSocket's connection map, shared by its server and clients. It is public at runtime but marked
 *  @internal, so the published .d.ts leaves it out. */
export function connectionMapOf(socket: QUICSocket): QUICConnectionMap {
  return (socket as unknown as { connectionMap: QUICConnectionMap }).connectionMap;
}
