// Envelope-wide wire facts and hard limits of the Findings protocol, each with its source (DESIGN.md,
// seeds, RFCs). Each protocol keeps its own facts in its folder's constants.ts (stun, nat, punch, quic,
// ws), record limits are in wire/limits.ts, and tunables are defaults in src/config/defaults.toml.

/** Version carried in every Envelope; a peer with another major version is refused (DESIGN §4). */
export const PROTOCOL_VERSION = 1;

/** Largest Envelope accepted from the network, in bytes. Node-record lists (shortlist 100 × ~400 B)
 *  fit with room; anything larger is a bug or an attack (STYLE §6). */
export const MAX_ENVELOPE_BYTES = 64 * 1024;

/** Largest single request read from one QUIC stream (one Envelope plus nothing else). */
export const MAX_QUIC_REQUEST_BYTES = MAX_ENVELOPE_BYTES;

/** Largest WebSocket frame on the mesh; a bigger frame closes the link with 1009 (RFC 6455 §7.4.1). */
export const MAX_WS_FRAME_BYTES = MAX_ENVELOPE_BYTES;

/** X25519 public and private key length (RFC 7748 §5). */
export const X25519_KEY_BYTES = 32;

/** Largest sealed box accepted: a certificate PEM (~700 B) plus port and ids, with room. */
export const MAX_SEALED_BYTES = 8 * 1024;

/** HKDF purpose labels: one per use, so a box made for one step cannot be replayed in another. */
export const SEAL_PURPOSE = {
  meshBootstrap: "findings/v1/mesh-bootstrap",
  appHello: "findings/v1/app-hello",
  appCert: "findings/v1/app-cert",
  /** The pinned reconnect's proof (a hello box seen on the untrusted link cannot be replayed as it). */
  appBind: "findings/v1/app-bind",
  /** The dial-back's proof on the mesh (its own label: the seal key is the same in both directions). */
  meshAccept: "findings/v1/mesh-accept",
  keyChallenge: "findings/v1/key-challenge",
  keyAnswer: "findings/v1/key-answer",
  /** A helper's proof of its record's key in a peers answer (mesh/helper-proof.ts): its own label, so a
   *  key answer cannot be passed off as a proof, nor a proof as a key answer. */
  helperProof: "findings/v1/helper-proof",
  record: "findings/v1/record",
  /** A node's signed list of its own share-pool entries for one search (share/holding.ts). */
  shareHolding: "findings/v1/share-holding",
  /** A source server's NewHostOrder to a delegate: no other sealed box can pass as an order. */
  natNewHost: "findings/v1/nat-newhost",
  /** A pool node's NewHostOrder to a NAT'd member of its findings pool (nat/newhost-member.ts). */
  natdNewHost: "findings/v1/natd-newhost",
} as const;

/** How long one request over QUIC or the mesh may take before the caller gives up, in ms. */
export const REQUEST_TIMEOUT_MS = 5_000;

/** How long a TLS handshake on the TCP port may take before the socket is destroyed (a client that
 *  stalls mid-handshake must not hold a slot), in ms. */
export const TLS_HANDSHAKE_TIMEOUT_MS = 5_000;
