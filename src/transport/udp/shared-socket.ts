// The one UDP socket per port shared by the QUIC server, our own QUIC dials and raw datagrams (DESIGN §2).
//
// @matrixai/quic's QUICSocket creates a node:dgram socket in start() and then binds, sends and closes only
// through `this.socket`. We catch that assignment and put a BunDatagramSocket (bun-socket.ts: Bun.udpSocket
// behind the node:dgram calls QUICSocket makes) in its place, so every datagram skips node:dgram's layer:
//   - each datagram goes straight to `receive`: those that are not QUIC (classifyDatagram: fixed bit 0x40
//     clear) never reach quiche and go to `onRawDatagram` (STUN Binding, SN probes); "unknown" ones are
//     counted and dropped;
//   - brand-new Initial packets are dropped before quiche when `admitNewConnection()` says no (the cheap
//     way to refuse beyond the connection cap: no retry token, no crypto);
//   - nothing thrown while handling network input escapes (QUICSocket rethrows unexpected quiche errors
//     from its async handler, which would be an unhandled rejection);
//   - QUIC packets and raw answers (sendRawNow) leave in one sendMany per event-loop turn.
import { isIP } from "node:net";
import type { RemoteInfo } from "node:dgram";
import { QUICConnectionId, QUICSocket, type QUICConnectionMap } from "@matrixai/quic";
import type Logger from "@matrixai/logger";
import { classifyDatagram, type DatagramKind } from "./classify.ts";
import { BunDatagramSocket } from "./bun-socket.ts";
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
  /** Errors of the socket (an ICMP port-unreachable, a refused or unroutable send), counted, not fatal. */
  socketErrors: number;
  /** Datagrams not sent because the send queue was full while the kernel's buffer was. */
  sendsDropped: number;
}

export function newSocketCounters(): SharedSocketCounters {
  return { quicDatagrams: 0, rawDatagrams: 0, unknownDatagrams: 0, droppedInitials: 0, datagramErrors: 0, socketErrors: 0, sendsDropped: 0 };
}

/** Kernel receive buffer asked for the shared socket, in bytes: one socket carries every connection, and
 *  the default 208 KiB overflows under bursts from many peers while the event loop is busy (measured:
 *  hundreds of RcvbufErrors in scripts/bench/whoami-quic.ts, each one a QUIC retransmit). */
const UDP_RECV_BUFFER_BYTES = 4 * 1024 * 1024;
/** Kernel send buffer asked for the shared socket, in bytes: bursts of answers and probes to many peers. */
const UDP_SEND_BUFFER_BYTES = 1024 * 1024;

/** What the QUIC library's sends resolve to: they are queued, never waited for. */
const QUEUED: Promise<number> = Promise.resolve(0);

const QUIC_VERSION_1 = 0x00000001;
/** RFC 9000 §17.2: the longest connection id in a QUIC v1 long header. */
const MAX_CID_BYTES = 20;

export class SharedUdpSocket extends QUICSocket {
  readonly counters: SharedSocketCounters;
  onRawDatagram?: RawDatagramHandler;
  admitNewConnection?: () => boolean;
  onDatagramError?: (err: unknown) => void;
  /** The socket under QUICSocket's `socket` property while started. */
  private udp: BunDatagramSocket | undefined;
  private bindOptions: { reuseAddr?: boolean; ipv6Only?: boolean } = {};
  /** `type === "ipv4&ipv6"`, kept at start: QUICSocket's `type` getter checks its lifecycle lock on every read. */
  private dualStack = false;

  /** `counters` may be passed in so they outlive one socket (an endpoint restarted on the same object). */
  constructor(opts: { logger: Logger; onRawDatagram?: RawDatagramHandler; counters?: SharedSocketCounters }) {
    super({ logger: opts.logger });
    this.counters = opts.counters ?? newSocketCounters();
    this.onRawDatagram = opts.onRawDatagram;
    const quicHandler = this.handleSocketMessage;
    const handleQuic = async (data: Buffer, remote: RemoteInfo): Promise<void> => {
      try {
        await quicHandler(data, remote);
      } catch (err) {
        this.counters.datagramErrors++;
        this.onDatagramError?.(err);
      }
    };
    // Not an async function: the raw path (STUN Binding at ~100k/s) must not pay for a promise per datagram.
    const receive = (data: Buffer, port: number, address: string, ipv6: boolean): void => {
      const kind = classifyDatagram(data);
      if (kind === "quic") {
        if (this.admitNewConnection && isNewConnectionInitial(data, this) && !this.admitNewConnection()) {
          this.counters.droppedInitials++;
          return;
        }
        this.counters.quicDatagrams++;
        void handleQuic(data, { address, port, family: ipv6 ? "IPv6" : "IPv4", size: data.length });
        return;
      }
      if (kind === "unknown" || !this.onRawDatagram) {
        this.counters.unknownDatagrams++;
        return;
      }
      this.counters.rawDatagrams++;
      let family: "IPv4" | "IPv6" = ipv6 ? "IPv6" : "IPv4";
      // A dual-stack socket reports IPv4 peers as ::ffff:a.b.c.d; our API speaks plain IPv4 for them.
      if (ipv6 && address.startsWith("::ffff:") && address.includes(".")) {
        address = address.slice(7);
        family = "IPv4";
      }
      try {
        this.onRawDatagram(data, { address, port, family }, kind);
      } catch (err) {
        this.counters.datagramErrors++;
        this.onDatagramError?.(err);
      }
    };
    const onError = (err: unknown): void => {
      this.counters.socketErrors++;
      this.onDatagramError?.(err);
    };
    // QUICSocket.start() runs `this.socket = dgram.createSocket({ type, ... })` and from then on uses only
    // `this.socket`. This accessor takes that unbound node:dgram socket (no file descriptor yet; it is
    // dropped) and keeps a BunDatagramSocket of the same type there instead.
    Object.defineProperty(this, "socket", {
      configurable: true,
      enumerable: true,
      get: () => this.udp,
      set: (value: { type?: string } | undefined) => {
        if (value === undefined || value instanceof BunDatagramSocket) {
          this.udp = value;
          return;
        }
        this.udp = new BunDatagramSocket(value.type ?? "udp6", {
          ...this.bindOptions,
          recvBufferBytes: UDP_RECV_BUFFER_BYTES,
          sendBufferBytes: UDP_SEND_BUFFER_BYTES,
          onDatagram: receive,
          onError,
          onSendDropped: () => void this.counters.sendsDropped++,
        });
      },
    });
  }

  override async start(opts: { host?: string; port?: number; reuseAddr?: boolean; ipv6Only?: boolean } = {}): Promise<void> {
    this.bindOptions = { reuseAddr: opts.reuseAddr, ipv6Only: opts.ipv6Only };
    await super.start(opts);
    if (!(this.udp instanceof BunDatagramSocket)) {
      await this.stop({ force: true });
      throw new Error("@matrixai/quic's QUICSocket no longer creates its socket through `this.socket`: shared-socket.ts needs updating");
    }
    this.dualStack = this.type === "ipv4&ipv6";
    // QUIC's packets join this turn's sendMany. Errors of a send are the socket's to count: for UDP a
    // refused or unreachable destination is one lost datagram, which QUIC recovers from.
    this.socketSend = (...params: Array<any>): Promise<number> => {
      const udp = this.udp;
      if (params.length >= 5) udp?.enqueue((params[0] as Uint8Array).subarray(params[1], params[1] + params[2]), params[3], params[4]);
      else udp?.enqueue(params[0], params[1], params[2]);
      return QUEUED;
    };
  }

  /** Queues one raw datagram for this turn's sendMany, without a promise (the STUN answer path). `bytes`
   *  must not be reused by the caller: it is read when the queue is sent. Errors are counted. */
  sendRawNow(bytes: Uint8Array, port: number, ip: string): void {
    const target = this.dualStack && !ip.includes(":") ? `::ffff:${ip}` : ip;
    this.udp?.enqueue(bytes, port, target);
  }

  /** Sends one raw datagram from this socket now; the caller may reuse `bytes` at once. An IPv4 target on
   *  a dual-stack socket is sent to its mapped form. A lost datagram (ICMP report, no route) is counted;
   *  a target the kernel refuses outright (broadcast, wrong family) is thrown. */
  async sendRaw(bytes: Uint8Array, port: number, ip: string): Promise<void> {
    const target = this.rawTarget(ip);
    const udp = this.udp;
    if (!udp) throw new Error("Cannot send: the UDP socket is not running");
    udp.sendNow(bytes, port, target);
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

/** QUICSocket's connection map, shared by its server and clients. It is public at runtime but marked
 *  @internal, so the published .d.ts leaves it out. */
export function connectionMapOf(socket: QUICSocket): QUICConnectionMap {
  return (socket as unknown as { connectionMap: QUICConnectionMap }).connectionMap;
}
