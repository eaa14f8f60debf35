// Limits and codes of the QUIC side of the shared UDP endpoint (DESIGN §2–§4, seed 001 §从应用端的连接).
import { SEAL_PURPOSE } from "../../constants.ts";

/** Default cap on live inbound QUIC connections. Each costs a quiche connection (~20–40 KB with its
 *  buffers) plus a stream table; 4096 is ~150 MB worst case, well inside one small VM, and above the
 *  DESIGN §5 app pool (500 per kind) for a node serving a few kinds. */
export const DEFAULT_MAX_QUIC_CONNECTIONS = 4096;

/** Default cap on live inbound connections from one IP. A NATed office or a CGNAT shares one IP, so this
 *  is generous; it only stops one host from eating the whole table. */
export const DEFAULT_MAX_QUIC_CONNECTIONS_PER_IP = 64;

/** Concurrent peer-opened bidirectional streams per connection (QUIC initial_max_streams_bidi, RFC 9000
 *  §4.6). One request uses one stream, so this bounds a peer's in-flight requests; quiche gives the credit
 *  back as streams finish. */
export const MAX_QUIC_STREAMS_PER_CONNECTION = 64;

/** Connections still in their handshake may hold this many slots beyond the connection cap; brand-new
 *  Initial packets beyond it are dropped before quiche sees them (cheap refusal, no crypto work). */
export const MAX_QUIC_PENDING_HANDSHAKES = 256;

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
} as const;

/** Seal purpose of `app.bind`, the step that tells the node a connection is pinned (see app-bootstrap.ts).
 *  A separate label from appHello, so a hello box seen by a man in the middle on the untrusted first
 *  connection cannot be replayed as a bind. */
export const SEAL_PURPOSE_APP_BIND = SEAL_PURPOSE.appBind;

/** Length of the app bootstrap session id (seed 001 §从应用端的连接 step 2: "标识ID"). */
export const APP_SESSION_ID_BYTES = 16;

/** How long a session id issued by app.hello may be bound by app.bind, in ms: the app reconnects at once
 *  (step 7), so a few request timeouts are plenty. */
export const APP_SESSION_TTL_MS = 60_000;

/** Most app sessions waiting for their bind at once; the oldest is forgotten first. Bounds the memory an
 *  app.hello flood can take (each entry ~100 B). */
export const MAX_APP_SESSIONS = 8_192;
