// Limits and defaults of live mesh links and the mesh bootstrap (DESIGN §3, §4; seed 001 §组网节点之间).
import { MAX_SEALED_BYTES, SEAL_PURPOSE } from "../constants.ts";
// Each is the default of an init field, so tests and the config can shorten it.
import { REQUEST_TIMEOUT_MS, TLS_HANDSHAKE_TIMEOUT_MS } from "../constants.ts";

/** Requests a first-contact (untrusted) inbound link may send before it is closed: first contact is brief
 *  (peers, a key check, a self-check echo, a hello, an app bootstrap), so a stranger cannot keep one link
 *  busy with requests the router refuses, each of which still costs us a frame, a decode and an answer. */
export const MAX_UNTRUSTED_LINK_REQUESTS = 16;

/** WebSocket path of the mesh on the TLS port (DESIGN §2: wss://host:port/mesh). */
export const MESH_PATH = "/mesh";

/** Largest mesh.hello / mesh.accept payload: a key and a sealed box (cert, ports, nonce, record), with framing. */
export const MAX_MESH_HELLO_BYTES = MAX_SEALED_BYTES + 256;

/** HKDF purpose of MeshAccept.sealed_nonce. Not SEAL_PURPOSE.meshBootstrap: the seal key is the
 *  same in both directions, so a distinct label keeps a hello box from ever passing as an accept.
 */
export const MESH_ACCEPT_SEAL_PURPOSE = SEAL_PURPOSE.meshAccept;

/** Bootstrap nonce we send: 16 random bytes never repeat in practice. */
export const MESH_NONCE_BYTES = 16;
/** Nonce lengths we accept from others (a peer may use a longer one). */
export const MIN_MESH_NONCE_BYTES = 16;
export const MAX_MESH_NONCE_BYTES = 64;

/** Longest certificate PEM accepted in a MeshHelloBody; our ECDSA P-256 PEM is ~600 chars. */
export const MAX_CERT_PEM_CHARS = 4096;

/** Whole bootstrap from the client's side (dial, hello, the server's dial-back, accept), in ms.
 *  Longer than MESH_DIAL_BACK_TIMEOUT_MS so the client still hears why a dial-back failed. */
export const MESH_BOOTSTRAP_TIMEOUT_MS = 2 * TLS_HANDSHAKE_TIMEOUT_MS;

/** The server's dial-back and accept exchange (steps 5–6), in ms. */
export const MESH_DIAL_BACK_TIMEOUT_MS = TLS_HANDSHAKE_TIMEOUT_MS;

/** How long an untrusted link (first contact, "online help", or a bootstrap in progress) may live,
 *  in ms: the seed's first contact is one request (seed 001 §组网节点之间 注). */
export const UNTRUSTED_LINK_LIFETIME_MS = 30_000;

/** Default timeout of link.request(), in ms. */
export const LINK_REQUEST_TIMEOUT_MS = REQUEST_TIMEOUT_MS;

/** Requests from the peer handled at once on one link; more are answered RATE_LIMITED. */
export const MAX_INFLIGHT_REQUESTS_PER_LINK = 32;

/** Our own requests waiting for answers on one link; more are refused locally. */
export const MAX_PENDING_REQUESTS_PER_LINK = 256;

/** Dial-backs a node runs at once for incoming hellos; more hellos are answered FULL, so hellos
 *  cannot make us hold many outgoing sockets. */
export const MAX_CONCURRENT_DIAL_BACKS = 8;

/** How long stop() waits for links to finish their close handshake, in ms. */
export const MESH_STOP_GRACE_MS = 1_000;
