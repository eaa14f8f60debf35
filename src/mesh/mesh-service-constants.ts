// Close codes and message limits of the running mesh service (DESIGN §3, §5, §8; seed 001 §组网规则, §公钥广播与验证).
// Pool sizes and the switch interval come from the config (shortlist, mesh_out, mesh_in,
// mesh_switch_s, mesh_share, peers_help); timeouts and rates sit beside the code that uses them, method
// names come from METHOD.mesh (src/rpc/methods.ts, proto/services.proto).

// ---- WebSocket close codes of mesh links (RFC 6455 §7.4.2: 4000–4999 are ours) ----

export const MESH_CLOSE = {
  /** Our incoming (or outgoing) mesh slots are all taken (mesh_in / mesh_out). */
  full: { code: 4001, reason: "mesh pool full" },
  /** A second link to a peer we already have a link with. */
  duplicate: { code: 4002, reason: "duplicate mesh link" },
  /** The peer is on our ban list. */
  banned: { code: 4003, reason: "banned" },
  /** Link switching (seed 001 §候选池: 一次切换1~2个节点). */
  switched: { code: 4004, reason: "switched to a fresh candidate" },
  /** We do not serve (client-only, or the self-check failed): no mesh links. */
  notServing: { code: 4005, reason: "not a service node" },
  /** The peer's network (/24, /48) already holds mesh_per_prefix of our links in that direction, or
   *  its network group (/16, /32), or the networks of several keys together, their share (mesh-pool.ts). */
  crowded: { code: 4006, reason: "too many mesh links to this network" },
} as const;

// ---- message limits and the search budget ----

/** Self-check nonce length: 16 random bytes never repeat. */
export const SELF_CHECK_NONCE_BYTES = 16;
/** Largest PeersAnswer / FindAnswer we decode (an Envelope limit minus its header). */
export const MAX_RECORD_LIST_BYTES = 60 * 1024;
/** Largest PeersRequest / SelfCheck messages (a few varints and a nonce). */
export const MAX_SMALL_MESSAGE_BYTES = 256;
/** Most records a peers answer to an app (`findings peers`) carries: the whole shortlist fits the
 *  envelope at ~400 B a record. */
export const MAX_PEERS_ANSWER_RECORDS = 120;
/** Whole budget of one forwarded search hop, in ms, per hop still left: a search that travels 3
 *  hops answers within ~3 s even when a node on the way is slow. */
export const FIND_HOP_TIMEOUT_MS = 1_000;
