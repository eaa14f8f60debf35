// Limits and codes of the QUIC side of the shared UDP endpoint (DESIGN §2–§4, seed 001 §从应用端的连接).

/** ALPN of Findings QUIC links; quiche needs one and both ends must share one. findings/2: a link's requests
 *  share request channels (mux-frame.ts); findings/1: one stream per request (rpc.ts). Both ends offer both,
 *  findings/2 first; an endpoint answers either form whatever was negotiated, and a requester uses channels
 *  only when findings/2 was agreed, so older peers keep working. */
export const QUIC_ALPN = "findings/2";
export const QUIC_ALPN_PER_STREAM = "findings/1";
export const QUIC_ALPNS: readonly string[] = [QUIC_ALPN, QUIC_ALPN_PER_STREAM];

/** Concurrent peer-opened bidirectional streams per connection (QUIC initial_max_streams_bidi, RFC 9000
 *  §4.6). One request uses one stream, so this bounds a peer's in-flight requests; quiche gives the credit
 *  back as streams finish. */
export const MAX_QUIC_STREAMS_PER_CONNECTION = 64;

/** How long a QUIC handshake may take, in ms. Same as the TLS handshake bound on the TCP port. */
export const QUIC_HANDSHAKE_TIMEOUT_MS = 5_000;

/** Application close code sent when a connection is refused by a limit (RFC 9000 §20.2 leaves app codes
 *  to the application). Also used by stop(). */
export const QUIC_CLOSE_REFUSED = 0x1;
/** Application close code for a normal close by the application. */
export const QUIC_CLOSE_NORMAL = 0x0;

/** Stream reset codes (RESET_STREAM / STOP_SENDING, RFC 9000 §19.4–19.5). */
export const QUIC_STREAM_CODE = {
  /** The request was larger than MAX_QUIC_REQUEST_BYTES. */
  tooLarge: 1,
  /** The request or the answer was not finished within REQUEST_TIMEOUT_MS. */
  timeout: 2,
  /** The endpoint is stopping or the caller aborted. */
  aborted: 3,
  /** A raw stream this endpoint does not take (no handler for it, a malformed header, a stranger's link). */
  refused: 4,
} as const;
