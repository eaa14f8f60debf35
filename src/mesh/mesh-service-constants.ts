// Method names, close codes and timing of the running mesh service (DESIGN §3, §5, §8; seed 001 §组网规则, §公钥广播与验证).
// Pool sizes and the switch interval come from the config (shortlist, mesh_out, mesh_in,
// mesh_switch_s, mesh_share, peers_help); these are the edges the config does not tune.
import { METHOD } from "../rpc/methods.ts";

// ---- methods: short names for the Mesh service's wire names (proto/services.proto, src/rpc/methods.ts) ----

/** Records a node knows: its own first, then a sample of its candidate pool (online help, peer sharing). */
export const MESH_PEERS_METHOD = METHOD.mesh.peers;
/** Key challenge of a shared record (key-challenge.ts), answered by the named node itself. */
export const MESH_KEY_CHECK_METHOD = METHOD.mesh.keyCheck;
/** "Am I publicly reachable?": the peer dials back our TCP and UDP ports (DESIGN §3 self-check). */
export const MESH_SELF_CHECK_METHOD = METHOD.mesh.selfCheck;
/** The dial-back of a self-check, carrying the asker's nonce. */
export const MESH_SELF_CHECK_ECHO_METHOD = METHOD.mesh.selfCheckEcho;
/** Search by app kind (DESIGN §8). */
export const MESH_FIND_METHOD = METHOD.mesh.find;

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
} as const;

// ---- timing ----

/** Maintenance tick: replaces lost links, runs the switch plan, refreshes RTTs. Cheap when nothing
 *  is missing (no messages), so 1 s keeps "lost links are replaced promptly" without cost. */
export const MESH_TICK_MS = 1_000;
/** Delay before refilling after a link closed: lets a burst of closes (a peer dying with several
 *  links, a switch) settle into one fill. */
export const REFILL_DELAY_MS = 100;
/** A candidate we failed to dial (unreachable, refused, full) is not picked again for this long. */
export const DIAL_COOLDOWN_MS = 10_000;
/** Consecutive failed dials or checks after which a candidate is dropped from the pool: a node that
 *  is down must not keep being shared (seed 001 §候选池: 可连接性测试). */
export const MAX_DIAL_FAILURES = 2;
/** A peer we switched away from is not picked again for this many switch intervals, so switching
 *  really brings fresh candidates. */
export const SWITCH_AWAY_INTERVALS = 2;
/** How often the candidate pool is written to <home>/peers.json (also written at stop). */
export const PEER_CACHE_WRITE_INTERVAL_MS = 60_000;
/** Timeout of a key check (dial + challenge), in ms: a loaded node still answers in well under it. */
export const KEY_CHECK_TIMEOUT_MS = 5_000;
/** Key checks run at once: a burst of shares must not make us open dozens of TLS links. */
export const MAX_CONCURRENT_KEY_CHECKS = 4;
/** First wait before a serving node with fewer candidates than mesh_out asks for help again, and
 *  between pool refreshes that bring news; doubled after each round that brings nothing, up to the
 *  switch interval. A newcomer whose helpers did not serve yet must not wait minutes. */
export const HELP_RETRY_MS = 3_000;
/** Longest wait between pool refreshes of a node that misses outgoing links and has no candidate
 *  left to dial (e.g. the first node of a network, whose every candidate already linked to it). */
export const STARVED_REFRESH_MAX_MS = 6_000;
/** Timeout of one online-help exchange (dial + mesh.peers), in ms. */
export const HELP_TIMEOUT_MS = 5_000;
/** Records asked of each helper; the helper caps it at its mesh_share. */
export const HELP_RECORDS_WANTED = 50;
/** Self-check: the asker waits this long for all answers (the checker dials back twice). */
export const SELF_CHECK_TIMEOUT_MS = 8_000;
/** Self-check: one dial-back (TCP or QUIC) on the checker's side, in ms. */
export const SELF_CHECK_DIAL_BACK_TIMEOUT_MS = 3_000;
/** Self-check nonce length: 16 random bytes never repeat. */
export const SELF_CHECK_NONCE_BYTES = 16;
/** Self-checks one source IP may ask of us: each makes us dial twice. 1 per 10 s, bursts of 3. */
export const SELF_CHECK_RATE_PER_S = 0.1;
export const SELF_CHECK_BURST = 3;
/** mesh.peers one link or source IP may ask: 2 per second, bursts of 20 (a helper serves many newcomers at once). */
export const PEERS_RATE_PER_S = 2;
export const PEERS_BURST = 20;
/** Whole budget of one forwarded search hop, in ms, per hop still left: a search that travels 3
 *  hops answers within ~3 s even when a node on the way is slow. */
export const FIND_HOP_TIMEOUT_MS = 1_000;
/** Largest PeersAnswer / FindAnswer we decode (an Envelope limit minus its header). */
export const MAX_RECORD_LIST_BYTES = 60 * 1024;
/** Largest PeersRequest / SelfCheck messages (a few varints and a nonce). */
export const MAX_SMALL_MESSAGE_BYTES = 256;
/** Most records a peers answer to an app (`findings peers`) carries: the whole shortlist fits the
 *  envelope at ~400 B a record. */
export const MAX_PEERS_ANSWER_RECORDS = 120;
