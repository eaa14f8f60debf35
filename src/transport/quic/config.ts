// QUIC configuration for Findings links: ALPN, limits, idle/keep-alive, retry-token crypto, SPKI pinning
// (DESIGN §3 "Pinning", §4; @matrixai/quic QUICConfig).
import QuicLibLogger, { Handler, LogLevel } from "@matrixai/logger";
import { native, type QUICClientConfigInput, type QUICServerConfigInput, type QUICServerCrypto, type QUICClientCrypto, type TLSVerifyCallback } from "@matrixai/quic";
import { DEFAULTS } from "../../config/index.ts";
import type { Logger } from "../../contracts/index.ts";
import { MAX_QUIC_REQUEST_BYTES } from "../../constants.ts";
import { spkiOfDer } from "../../identity/index.ts";
import type { RunCertificate } from "../../identity/index.ts";
import { MAX_QUIC_STREAMS_PER_CONNECTION, QUIC_ALPNS } from "./constants.ts";


/** Per-stream receive window: one request (or answer) plus framing slack. The peer cannot push more than
 *  this into one stream before we read, so an oversize request is stopped by flow control, not by memory. */
const STREAM_WINDOW_BYTES = MAX_QUIC_REQUEST_BYTES + 4096;
/** Connection receive window: two full-size requests in flight at once; more waits for credit. Requests are
 *  small (whoami is ~10 B), so this rarely binds, and it caps what one peer can make us buffer at ~136 KB
 *  (max_quic_connections × this is the worst case for the whole endpoint). */
const CONNECTION_WINDOW_BYTES = 2 * STREAM_WINDOW_BYTES;

/** Limits shared by both ends. `initialMaxStreamsUni: 0`: Findings uses only bidirectional streams, so a
 *  peer may not open unidirectional ones at all. Datagrams (RFC 9221) stay off. */
function commonConfig(idleTimeoutMs: number): Partial<QUICServerConfigInput> {
  return {
    applicationProtos: [...QUIC_ALPNS],
    maxIdleTimeout: idleTimeoutMs,
    initialMaxData: CONNECTION_WINDOW_BYTES,
    initialMaxStreamDataBidiLocal: STREAM_WINDOW_BYTES,
    initialMaxStreamDataBidiRemote: STREAM_WINDOW_BYTES,
    initialMaxStreamDataUni: 0,
    initialMaxStreamsBidi: MAX_QUIC_STREAMS_PER_CONNECTION,
    initialMaxStreamsUni: 0,
    maxConnectionWindow: CONNECTION_WINDOW_BYTES,
    maxStreamWindow: STREAM_WINDOW_BYTES,
    // 0-RTT data could be replayed by anyone on the path (RFC 9001 §9.2); requests are not idempotent.
    enableEarlyData: false,
  };
}

/** Server side: our run certificate; clients are not asked for one (apps prove their key by sealing). No
 *  keep-alive from the server: the app behind a NAT keeps its own mapping alive, and an app that stops
 *  pinging is idled out. */
export function serverQuicConfig(cert: RunCertificate, idleTimeoutMs = DEFAULTS.idle_timeout_s * 1000): QUICServerConfigInput {
  return { ...commonConfig(idleTimeoutMs), key: cert.keyPem, cert: cert.certPem, verifyPeer: false };
}

/**
 * Client side. With `pinSpki` the server certificate must have exactly that SPKI (DESIGN §3 "Pinning");
 * without it the link is first contact: any certificate is accepted and the link is untrusted. Keep-alives
 * at a third of the idle timeout keep the NAT mapping and the connection alive.
 */
export function clientQuicConfig(opts: { pinSpki?: string; idleTimeoutMs?: number; onPinMismatch?: (got: string) => void }): QUICClientConfigInput {
  const idle = opts.idleTimeoutMs ?? DEFAULTS.idle_timeout_s * 1000;
  const base = { ...commonConfig(idle), keepAliveIntervalTime: Math.floor(idle / 3) };
  if (opts.pinSpki === undefined) return { ...base, verifyPeer: false };
  return { ...base, verifyPeer: true, verifyCallback: pinVerifier(opts.pinSpki, opts.onPinMismatch) };
}

/** A verifyCallback that accepts exactly one SPKI. With a callback set, quiche skips its own chain check
 *  (self-signed certificates are the norm here), so this is the whole verification. */
export function pinVerifier(spki: string, onMismatch?: (got: string) => void): TLSVerifyCallback {
  const want = spki.toLowerCase();
  return async (certs) => {
    const leaf = certs[0];
    if (!leaf) return native.CryptoError.CertificateRequired;
    let got: string;
    try {
      got = spkiOfDer(leaf);
    } catch {
      return native.CryptoError.BadCertificate;
    }
    if (got === want) return undefined;
    onMismatch?.(got);
    return native.CryptoError.BadCertificate;
  };
}

/** Stateless-retry token crypto for QUICServer: HMAC-SHA256 under a per-run random key (RFC 9000 §8.1.4:
 *  the token only has to be unforgeable by others and checkable by us). */
export async function serverQuicCrypto(): Promise<QUICServerCrypto> {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
  return {
    key: raw.buffer,
    ops: {
      // The library passes its own copy of the key; ours is already imported.
      sign: async (_key, data) => crypto.subtle.sign("HMAC", key, data),
      verify: async (_key, data, sig) => crypto.subtle.verify("HMAC", key, sig, data),
    },
  };
}

export const clientQuicCrypto: QUICClientCrypto = {
  ops: {
    randomBytes: async (data: ArrayBuffer) => {
      crypto.getRandomValues(new Uint8Array(data));
    },
  },
};

/** A @matrixai/logger that forwards warnings and errors to our log as debug lines: what the library
 *  reports is almost always about a remote peer (timeouts, TLS failures), which we count elsewhere. */
export function quicLogger(log?: Logger): QuicLibLogger {
  if (!log) return new QuicLibLogger("quic", LogLevel.SILENT, []);
  class Forward extends Handler {
    override handle(record: { msg: string | undefined; keys: string; level: LogLevel }): void {
      log!.debug(`quic: ${record.msg ?? ""}`, { logger: record.keys });
    }
    emit(): void {}
  }
  return new QuicLibLogger("quic", LogLevel.WARN, [new Forward()]);
}
