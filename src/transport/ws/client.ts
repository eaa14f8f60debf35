// Dialling wss://ip:port/path with an optional SPKI pin (DESIGN §3 "Pinning"; seed 001 §连接安全):
// the certificate is checked against the pin after the TLS handshake and before a single byte
// of ours is sent; no pin means an untrusted first-contact link.
import * as tls from "node:tls";
import { TLS_HANDSHAKE_TIMEOUT_MS } from "../../constants.ts";
import { PeerError, TimeoutError } from "../../errors.ts";
import { spkiOfDer } from "../../identity/certificate.ts";
import { formatHostPort, type HostPort } from "../tls/address.ts";
import { SILENT_LOG, type TlsLog } from "../tls/log.ts";
import { MAX_WS_HTTP_HEAD_BYTES } from "./constants.ts";
import { createWsConnection, type WsConnection } from "./connection.ts";
import { checkUpgradeResponse, findHeadEnd, newClientKey, upgradeRequest } from "./handshake.ts";

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
  /** Passed to the connection. @default MAX_WS_FRAME_BYTES */
  maxFrameBytes?: number;
  /** Passed to the connection. @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  /** Source IP of the dial: a node bound to one IP dials from it, so peers see (and limit, and ban)
   *  the address it serves on. @default the kernel's choice */
  localAddress?: string;
  log?: TlsLog;
}

export interface WssDial {
  /** Not started: call conn.start() to read. */
  readonly conn: WsConnection;
  /** SPKI of the certificate the server showed (equal to the pin when one was given). */
  readonly peerSpki: string;
}

/** Thrown when the server's certificate does not match the pin (a man in the middle, or a node
 *  that restarted with a new certificate). */
export class PinMismatchError extends PeerError {
  readonly expectedSpki: string;
  readonly actualSpki: string;
  constructor(url: string, expected: string, actual: string) {
    super(`Refused ${url}: certificate SPKI ${actual.slice(0, 16)}… does not match the pinned ${expected.slice(0, 16)}…`);
    this.name = "PinMismatchError";
    this.expectedSpki = expected;
    this.actualSpki = actual;
  }
}

export function dialWss(addr: HostPort, opts: DialWssOptions = {}): Promise<WssDial> {
  const log = opts.log ?? SILENT_LOG;
  const path = opts.path ?? "/mesh";
  const authority = formatHostPort(addr);
  const url = `wss://${authority}${path}`;
  const timeoutMs = opts.timeoutMs ?? TLS_HANDSHAKE_TIMEOUT_MS;
  if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);

  return new Promise<WssDial>((resolve, reject) => {
    let settled = false;
    let peerSpki = "";
    const key = newClientKey();
    let headBytes = new Uint8Array(0);

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
      socket.off("data", onData);
      socket.off("error", onError);
      socket.off("close", onClose);
      if (err !== null) {
        socket.on("error", () => {});
        socket.destroy();
        reject(err);
      } else resolve(done!);
    }

    function onSecure(): void {
      let der: Uint8Array;
      try {
        const raw = socket.getPeerCertificate(true)?.raw;
        if (!raw) throw new Error("no certificate");
        der = new Uint8Array(raw);
        peerSpki = spkiOfDer(der);
      } catch (err) {
        settle(new PeerError(`Refused ${url}: the server showed no usable certificate`, { cause: err }));
        return;
      }
      if (opts.pinSpki && peerSpki !== opts.pinSpki) {
        log("warn", "pinned link refused: certificate does not match", { url, expected: opts.pinSpki, actual: peerSpki });
        settle(new PinMismatchError(url, opts.pinSpki, peerSpki));
        return;
      }
      socket.write(upgradeRequest(authority, path, key));
    }

    function onData(chunk: Buffer): void {
      const joined = new Uint8Array(headBytes.length + chunk.length);
      joined.set(headBytes, 0);
      joined.set(chunk, headBytes.length);
      headBytes = joined;
      const end = findHeadEnd(headBytes);
      if (end < 0) {
        if (headBytes.length > MAX_WS_HTTP_HEAD_BYTES) settle(new PeerError(`Refused ${url}: upgrade answer head is over ${MAX_WS_HTTP_HEAD_BYTES} bytes`));
        return;
      }
      if (end > MAX_WS_HTTP_HEAD_BYTES) {
        settle(new PeerError(`Refused ${url}: upgrade answer head is over ${MAX_WS_HTTP_HEAD_BYTES} bytes`));
        return;
      }
      const answer = checkUpgradeResponse(Buffer.from(headBytes.subarray(0, end - 4)).toString("latin1"), key);
      if (!answer.ok) {
        settle(new PeerError(`Cannot open ${url}: ${answer.reason}`));
        return;
      }
      // Stop reading before handing over, so no frame bytes are emitted with nobody listening.
      socket.pause();
      const conn = createWsConnection(socket, {
        role: "client",
        head: headBytes.subarray(end),
        maxFrameBytes: opts.maxFrameBytes,
        idleTimeoutMs: opts.idleTimeoutMs,
        log,
      });
      settle(null, { conn, peerSpki });
    }

    function onError(err: Error & { code?: string }): void {
      settle(new PeerError(`Cannot open ${url}: ${err.code ?? err.message}`, { cause: err }));
    }

    function onClose(): void {
      settle(new PeerError(`Cannot open ${url}: the server closed the connection during the handshake`));
    }

    socket.once("secureConnect", onSecure);
    socket.on("data", onData);
    socket.on("error", onError);
    socket.on("close", onClose);
  });
}
