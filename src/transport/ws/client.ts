// Dialling wss://ip:port/path with an optional SPKI pin (DESIGN §3 "Pinning"; seed 001 §连接安全):
// we open TLS ourselves and check the certificate against the pin before a single byte of ours is
// sent; only then does `ws` get the socket to write its upgrade request on. No pin means an
// untrusted first-contact link.
import * as tls from "node:tls";
import { WebSocket } from "ws";
import { MAX_WS_FRAME_BYTES, TLS_HANDSHAKE_TIMEOUT_MS } from "../../constants.ts";
import { PeerError, PinMismatchError, TimeoutError } from "../../errors.ts";
import { spkiOfDer } from "../../identity/index.ts";
import { formatAddress, type HostPort } from "../../contracts/index.ts";
import { WS_CLOSE_TIMEOUT_MS, type WsCloseTimeoutOption } from "./constants.ts";
import { wrapWebSocket, type WsConnection } from "./connection.ts";
import { silentLogger, type Logger } from "../../contracts/index.ts";

export interface DialWssOptions {
  /** Request path. @default "/mesh" */
  path?: string;
  /** Hex SHA-256 SPKI the server's certificate must have; null or absent: no pin (untrusted). */
  pinSpki?: string | null;
  /** Our run certificate, offered as TLS client certificate so the server learns our SPKI. */
  clientCert?: { certPem: string; keyPem: string };
  /** Budget for TCP connect, TLS and the upgrade together. @default TLS_HANDSHAKE_TIMEOUT_MS */
  timeoutMs?: number;
  signal?: AbortSignal;
  /** Largest message accepted from the server; more closes with 1009. @default MAX_WS_FRAME_BYTES */
  maxFrameBytes?: number;
  /** Passed to the connection. @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  /** Source IP of the dial: a node bound to one IP dials from it, so peers see (and limit, and ban)
   *  the address it serves on. @default the kernel's choice */
  localAddress?: string;
  log?: Logger;
}

export interface WssDial {
  /** Not started: call conn.start() to read. */
  readonly conn: WsConnection;
  /** SPKI of the certificate the server showed (equal to the pin when one was given). */
  readonly peerSpki: string;
}

/** Re-exported for callers of dialWss. */
export { PinMismatchError };

export function dialWss(addr: HostPort, opts: DialWssOptions = {}): Promise<WssDial> {
  const log = opts.log ?? silentLogger;
  const path = opts.path ?? "/mesh";
  const url = `wss://${formatAddress(addr)}${path}`;
  const timeoutMs = opts.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);

  return new Promise<WssDial>((resolve, reject) => {
    let settled = false;
    let ws: WebSocket | null = null;
    let peerSpki = "";

    const socket = tls.connect({
      host: addr.ip,
      port: addr.port,
      // We pin by SPKI ourselves below; CA validation means nothing for self-signed run certificates.
      rejectUnauthorized: false,
      ALPNProtocols: ["http/1.1"],
      ...(opts.localAddress ? { localAddress: opts.localAddress } : {}),
      ...(opts.clientCert ? { cert: opts.clientCert.certPem, key: opts.clientCert.keyPem } : {}),
    });

    const timer = setTimeout(() => settle(new TimeoutError(`opening ${url}`, timeoutMs)), timeoutMs);
    const onAbort = () => settle(opts.signal!.reason ?? new Error("aborted"));
    opts.signal?.addEventListener("abort", onAbort, { once: true });

    function settle(err: unknown, done?: WssDial): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      opts.signal?.removeEventListener("abort", onAbort);
      socket.off("secureConnect", onSecure);
      socket.off("error", onError);
      socket.off("close", onClose);
      ws?.off("open", onOpen);
      ws?.off("unexpected-response", onRefused);
      ws?.off("error", onError);
      if (err !== null) {
        socket.on("error", () => {});
        ws?.on("error", () => {});
        ws?.terminate();
        socket.destroy();
        reject(err);
      } else resolve(done!);
    }

    function onSecure(): void {
      try {
        const raw = socket.getPeerCertificate(true)?.raw;
        if (!raw) throw new Error("no certificate");
        peerSpki = spkiOfDer(new Uint8Array(raw));
      } catch (err) {
        settle(new PeerError(`Refused ${url}: the server showed no usable certificate`, { cause: err }));
        return;
      }
      if (opts.pinSpki && peerSpki !== opts.pinSpki) {
        log.warn("pinned link refused: certificate does not match", { url, expected: opts.pinSpki, actual: peerSpki });
        settle(new PinMismatchError(`Refused ${url}: certificate SPKI ${peerSpki.slice(0, 16)}… does not match the pinned ${opts.pinSpki.slice(0, 16)}…`, opts.pinSpki, peerSpki));
        return;
      }
      // The pin holds: `ws` writes its upgrade request on this socket and frames the link.
      const options: WebSocket.ClientOptions & WsCloseTimeoutOption = {
        createConnection: () => socket,
        maxPayload: opts.maxFrameBytes ?? MAX_WS_FRAME_BYTES,
        perMessageDeflate: false,
        closeTimeout: WS_CLOSE_TIMEOUT_MS,
      };
      try {
        ws = new WebSocket(url, options);
      } catch (err) {
        settle(new PeerError(`Cannot open ${url}: ${err instanceof Error ? err.message : String(err)}`, { cause: err }));
        return;
      }
      ws.on("open", onOpen);
      ws.on("unexpected-response", onRefused);
      ws.on("error", onError);
    }

    function onOpen(): void {
      const conn = wrapWebSocket(ws!, socket, { role: "client", idleTimeoutMs: opts.idleTimeoutMs, log });
      settle(null, { conn, peerSpki });
    }

    function onRefused(_req: unknown, res: { statusCode?: number; statusMessage?: string }): void {
      settle(new PeerError(`Cannot open ${url}: server answered ${res.statusCode ?? "?"}${res.statusMessage ? ` ${res.statusMessage}` : ""}`));
    }

    function onError(err: Error & { code?: string }): void {
      settle(new PeerError(`Cannot open ${url}: ${err.code ?? err.message}`, { cause: err }));
    }

    function onClose(): void {
      settle(new PeerError(`Cannot open ${url}: the server closed the connection during the handshake`));
    }

    socket.once("secureConnect", onSecure);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}
