// A client-only UDP socket: QUIC dials and raw datagrams from one socket, no QUIC server (DESIGN §2). Used
// by CLI commands (whoami, probe, punch) and by apps; a node uses createUdpEndpoint instead.
import { formatAddress } from "../../contracts/index.ts";
import type { QuicLink } from "../quic/link.ts";
import { createRouter, type Router } from "../../rpc/index.ts";
import { UdpCore, type DialOptions, type LinkEvent, type LinkListener, type UdpCoreCounters } from "./core.ts";
import type { RawDatagramHandler } from "./shared-socket.ts";
import type { RawStreamHandler } from "../quic/raw-stream.ts";
import type { Logger } from "../../contracts/index.ts";
import { createSerial } from "./serial.ts";

export interface UdpClientInit {
  /** Address to bind: "0.0.0.0" for IPv4 servers, "::" for IPv6 (dual-stack). @default "::" */
  host?: string;
  /** @default 0 (any free port) */
  port?: number;
  /** @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  onRawDatagram?: RawDatagramHandler;
  /** Raw streams peers open on our links (quic/raw-stream.ts); without it they are reset. */
  onRawStream?: RawStreamHandler;
}

/** Common surface of the node endpoint and the client-only socket: what bootstrapApp and quicWhoami use. */
export interface QuicDialer {
  dial(addr: { ip: string; port: number }, opts?: DialOptions): Promise<QuicLink>;
}

/** One shared UDP socket with QUIC links: the client-only socket, and the base of the node's endpoint. */
export interface UdpClient extends QuicDialer {
  start(): Promise<void>;
  /** Idempotent; closes every link and the socket. */
  stop(): Promise<void>;
  /** Bound port after start(), else the configured one. */
  readonly port: number;
  readonly host: string;
  /** Sends a raw datagram from the shared socket (STUN answers, SN probes, NAT tests, punch openers). */
  sendRaw(bytes: Uint8Array, port: number, ip: string): Promise<void>;
  /** Serves the requests peers open on our links (e.g. a node pushing a punch offer to an app). */
  readonly router: Router;
  /** "connect"/"close" for every link (in and out); "bind" when an inbound app link becomes pinned. */
  on(event: LinkEvent, fn: LinkListener): () => void;
  /** Live links by connection id. */
  links(): QuicLink[];
  counters(): UdpCoreCounters;
}

export function createUdpClient(components: { log?: Logger; router?: Router }, init: UdpClientInit = {}): UdpClient {
  const router = components.router ?? createRouter({ log: components.log });
  const core = new UdpCore({ host: init.host ?? "::", port: init.port ?? 0, idleTimeoutMs: init.idleTimeoutMs, onRawDatagram: init.onRawDatagram, onRawStream: init.onRawStream }, router, components.log);
  let running = false;
  const serial = createSerial();
  return {
    start: () =>
      serial(async () => {
        if (running) return;
        await core.openSocket();
        running = true;
      }),
    stop: () =>
      serial(async () => {
        if (!running) return;
        running = false;
        await core.closeAll();
      }),
    get port() {
      return core.socket?.port ?? init.port ?? 0;
    },
    get host() {
      return core.socket?.host ?? init.host ?? "::";
    },
    async sendRaw(bytes, port, ip) {
      const socket = core.socket;
      if (!socket) throw new Error(`Cannot send to ${formatAddress(ip, port)}: the UDP socket is not running`);
      await socket.sendRaw(bytes, port, ip);
    },
    router,
    on: (event, fn) => core.on(event, fn),
    links: () => [...core.links.values()],
    dial: (addr, opts?: DialOptions) => core.dial(addr, opts),
    counters: () => core.counters(),
  };
}
