// Defaults and limits of the TLS port (DESIGN §2: one TCP port for the WSS mesh and HTTPS /whoami).
// Every one is a default of TlsEndpointInit, so tests and the config can change it.
import { LINK_IDLE_TIMEOUT_MS, MAX_ENVELOPE_BYTES } from "../../constants.ts";

/** TCP connections held at once (handshaking, HTTP and WebSocket together); more are dropped at
 *  accept. One costs a few KB of TLS state; 1024 is far above 16 mesh links plus whoami traffic. */
export const DEFAULT_TLS_MAX_CONNECTIONS = 1024;

/** TCP connections from one IP at once, so one host cannot take every slot. */
export const DEFAULT_TLS_MAX_CONNECTIONS_PER_IP = 32;

/** WebSocket links at once: the mesh pool (16, DESIGN §5) plus bootstrap and first-contact links
 *  in flight, with room. Upgrades beyond it get 503. */
export const DEFAULT_TLS_MAX_LINKS = 64;

/** WebSocket links from one IP at once. A node needs 2 (the first contact and the dial-back);
 *  devnets with many nodes on one loopback IP must raise it. Upgrades beyond it get 429. */
export const DEFAULT_TLS_MAX_LINKS_PER_IP = 8;

/** Silence after which an HTTP connection (not upgraded) is closed, in ms. */
export const DEFAULT_HTTP_IDLE_TIMEOUT_MS = LINK_IDLE_TIMEOUT_MS;

/** Largest HTTP request body a route receives; routes carry small JSON or one envelope. */
export const MAX_HTTP_BODY_BYTES = MAX_ENVELOPE_BYTES;

/** Concurrent HTTP/2 streams per connection: whoami needs one; a few dozen bounds the memory a
 *  single client can hold. */
export const H2_MAX_CONCURRENT_STREAMS = 32;

/** How long stop() waits for WebSocket close handshakes before destroying the sockets, in ms. */
export const TLS_STOP_GRACE_MS = 1_000;

/** After a refusal is written on an upgrade socket, it is destroyed after this long, in ms, if the
 *  client has not closed it. */
export const WS_REFUSAL_LINGER_MS = 1_000;
