// Limits and defaults of the mesh cores: records, pools, bans, peer cache, search (DESIGN §4, §5, §8; seed 001 §组网规则).
// Tunables here are the defaults of the pure cores; the node passes the configured values
// (src/config/defaults.toml: shortlist, mesh_out, mesh_in, mesh_switch_s, peer_cache_days) as init.

// ---- node records (DESIGN §4) ----

/** Largest encoded NodeRecord accepted, in bytes. A typical record is ~250 B; 4 KB leaves room for
 *  dozens of kinds and stakes, while a shortlist answer must still fit MAX_ENVELOPE_BYTES. The count
 *  and length caps below can add up to more than this; the byte cap is checked too. */
export const MAX_RECORD_BYTES = 4096;
/** Addresses per record: one per family plus a spare each; more is a padding attack. */
export const MAX_RECORD_ADDRESSES = 4;
/** Protocols per record ("quic", "http2", with room for a few more). */
export const MAX_RECORD_PROTOCOLS = 8;
/** Longest protocol name, in characters. */
export const MAX_PROTOCOL_CHARS = 16;
/** App kinds (and stakes) one node may advertise. */
export const MAX_RECORD_KINDS = 32;
/** Longest app kind, e.g. "blockchain:bitcoin", in characters. */
export const MAX_KIND_CHARS = 64;
/** Longest stake (reward) address; Bitcoin bech32m is ≤ 90, Ethereum 42, room for others. */
export const MAX_STAKE_ADDRESS_CHARS = 128;
/** Longest identity id (server group member tag, seed 001 §服务器群). */
export const MAX_IDENTITY_ID_CHARS = 64;
/** How far in the future a record's issued_at_ms may lie: peers' clocks drift, 5 min is generous. */
export const MAX_CLOCK_SKEW_MS = 5 * 60_000;
/** Largest seq accepted: seq is a JSON number in CLI output and status, so it must stay exact. */
export const MAX_RECORD_SEQ = Number.MAX_SAFE_INTEGER;
/** SHA-256 length: node id, SPKI pin. */
export const SHA256_BYTES = 32;
/** Ed25519 public key and signature lengths (RFC 8032 §5.1.5, §5.1.6). */
export const ED25519_PUBLIC_KEY_BYTES = 32;
export const ED25519_SIGNATURE_BYTES = 64;
/** HKDF info for the record signing key derived from the X25519 node key. Versioned so a future
 *  scheme gets a different key. */
export const RECORD_SIGNING_KEY_LABEL = "findings/v1/record-signing-key";

// ---- key challenge (seed 001 §公钥广播与验证) ----

/** Random value A: 32 bytes, so guessing it is hopeless. */
export const CHALLENGE_NONCE_BYTES = 32;
/** Longest address string in a key answer ("[v6]:port/port" is < 60 chars). */
export const MAX_CHALLENGE_ADDRESS_CHARS = 128;
/** Largest KeyChallenge / KeyAnswer message accepted, in bytes (a key, a nonce, a box). */
export const MAX_CHALLENGE_BYTES = 1024;

// ---- candidate pool (seed 001 §候选池) ----

/** Candidate pool size (config `shortlist`). */
export const DEFAULT_SHORTLIST = 100;
/** A candidate not seen (no link, no check, no share naming it) for this long is dropped. One hour:
 *  public nodes that are up get re-shared within minutes by the link switching. */
export const DEFAULT_CANDIDATE_TTL_MS = 60 * 60_000;
/** Reachability + key checks one merge may ask for: a peer sharing 100 fresh records must not make
 *  us dial 100 nodes at once (amplification). The rest come with later shares. */
export const DEFAULT_MAX_CHECKS_PER_MERGE = 10;
/** RTT samples kept per candidate; the median of these is its latency. */
export const RTT_SAMPLES = 8;
/** Records given to a new link (seed 001 §候选池: share on each new link; DESIGN §5 "~10"). */
export const DEFAULT_SHARE_COUNT = 10;
/** Weight of the far third in pickForSwitch: the near end weighs ~1, the far third this floor, so
 *  roughly half the picks are near, a fifth far (seed: 低延迟优先，适当兼顾中高延迟节点). */
export const FAR_PICK_WEIGHT = 1 / 3;

// ---- mesh pool (seed 001 §组网池, DESIGN §5) ----

export const DEFAULT_MESH_OUT = 8;
export const DEFAULT_MESH_IN = 8;
/** Switch 1–2 outgoing links this often (config `mesh_switch_s`; seed: 通常几分钟一次). */
export const DEFAULT_SWITCH_INTERVAL_MS = 5 * 60_000;
/** ± share of the interval drawn at random, so nodes started together do not switch in lockstep. */
export const SWITCH_JITTER = 0.2;

// ---- bans (DESIGN §5) ----

/** Temporary ban length (DESIGN §5: 4 h). */
export const DEFAULT_BAN_MS = 4 * 60 * 60_000;
/** Most temporary bans held; past it the one expiring first goes (a flood of bad peers must not grow
 *  memory without bound). */
export const MAX_TEMP_BANS = 10_000;
/** Largest <home>/bans.json read, in bytes. */
export const MAX_BANS_FILE_BYTES = 1024 * 1024;
export const BANS_FILE = "bans.json";

// ---- peer cache (seed 001 §注意事项: 本地暂存，但不应长期保存) ----

export const PEERS_FILE = "peers.json";
/** Entries older than this are dropped on read and write (config `peer_cache_days`). */
export const DEFAULT_PEER_CACHE_MAX_AGE_MS = 7 * 24 * 60 * 60_000;
/** Most entries kept in peers.json. */
export const MAX_PEER_CACHE_ENTRIES = 1000;
/** Largest peers.json read: 1000 records as base64 JSON is ~600 KB. */
export const MAX_PEER_CACHE_BYTES = 2 * 1024 * 1024;

// ---- search (DESIGN §8) ----

/** Hops a search may travel through the mesh: 3 hops × 16 links reach ~4000 nodes. */
export const MAX_SEARCH_HOPS = 3;
/** How long a request id is remembered, so a search that loops back is dropped. */
export const DEFAULT_SEEN_WINDOW_MS = 60_000;
/** Most request ids remembered at once (memory bound under a flood). */
export const MAX_SEEN_REQUESTS = 10_000;
/** Request id length: 16 random bytes make collisions negligible. */
export const SEARCH_REQUEST_ID_BYTES = 16;
/** Searches a link may send: a sustained 2 per second with bursts of 10. */
export const DEFAULT_SEARCH_RATE_PER_S = 2;
export const DEFAULT_SEARCH_BURST = 10;
/** Most rate buckets held (one per link or app address). */
export const MAX_RATE_BUCKETS = 4096;
/** Most records in one search answer: fits MAX_ENVELOPE_BYTES with typical records. */
export const MAX_SEARCH_ANSWERS = 50;
