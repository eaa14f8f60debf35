// Defaults and limits of the app-service cores: app pool, punch brokering, share pool (DESIGN §5, §7; seed 000
// §应用池, §打洞协助; seed 001 §分享池). The node passes the configured values (punch_xpool, peers_punch,
// share_xpool) as init; these are the defaults of the pure cores and the hard limits of their inputs.

// ---- app pool (seed 000 §应用池) ----

/** Members per kind (config `punch_xpool`): seed 000 §应用池 "可能为 500（应可配置）". */
export const DEFAULT_PUNCH_XPOOL = 500;
/** Peers one random punch returns (config `peers_punch`, DESIGN §7). */
export const DEFAULT_PEERS_PUNCH = 5;
/** A member not seen (no request, no keep-alive) for this long is expired, in ms. Four QUIC idle
 *  periods (LINK_IDLE_TIMEOUT_MS = 30 s): a live connection refreshes it well before. */
export const DEFAULT_APP_IDLE_MS = 120_000;

// ---- punch tokens and roles (seed 000 §基本规则, §消息包) ----

/** Token bytes per side per attempt. The seed asks for a "sequence number"; 16 random bytes make a tie
 *  practically impossible (2^-128) and the token unguessable, so it can also authenticate the peer. */
export const PUNCH_TOKEN_BYTES = 16;
/** Fewest token bytes accepted from the wire (brief: 8+). */
export const MIN_PUNCH_TOKEN_BYTES = 8;
/** Most token bytes accepted from the wire. */
export const MAX_PUNCH_TOKEN_BYTES = 32;
/** Attempt id bytes: correlates both sides' logs and results. */
export const PUNCH_ATTEMPT_ID_BYTES = 16;

// ---- strategies beyond the seed (DESIGN §7: "many sockets on the symmetric side") ----

/** Sockets the symmetric side opens, each sending to the cone side: 256 fds stays under the usual
 *  1024 soft limit and, with SPRAY_PROBES, gives ~98 % (birthday bound, Tailscale "How NAT traversal
 *  works" §"The benefits of birthdays"). */
export const SPRAY_SOCKETS = 256;
/** Probes the cone side sends to distinct random ports of the symmetric side's IP. */
export const SPRAY_PROBES = 1024;
/** Port range a NAT allocates mappings from: Linux masquerade maps ports ≥ 1024 into 1024–65535. */
export const SPRAY_PORT_MIN = 1024;
export const SPRAY_PORT_MAX = 65535;
/** Pacing of the cone side's probes, in ms: 1024 probes in ~5 s stays under typical NAT rate limits on
 *  new mappings and looks less like a port scan than a burst. */
export const SPRAY_PROBE_INTERVAL_MS = 5;
/** Ports probed first when the symmetric NAT allocates with a constant step: base + delta·k for
 *  k = 1..this. Twice SPRAY_SOCKETS leaves room for other hosts' mappings interleaving. */
export const SPRAY_PREDICT_WINDOW = 512;
/** Largest |delta| taken as a predictable step; larger steps are more likely coincidence. */
export const MAX_PREDICT_DELTA = 64;
/** Odds at or above which a spray plan is reported as expected to succeed. */
export const SPRAY_EXPECT_ODDS = 0.9;

// ---- signalling coordination (seed 000 §信令协调) ----

/** How long the node remembers a brokered pair to re-broker it on a mapping change, in ms. */
export const PUNCH_PAIR_TTL_MS = 30 * 60_000;
/** Most partners remembered per node (oldest forgotten first): bounds memory per member. */
export const MAX_PUNCH_PARTNERS = 16;

// ---- share pool (seed 001 §分享池) ----

/** Servers per kind (config `share_xpool`, DESIGN §5). */
export const DEFAULT_SHARE_XPOOL = 1000;
/** Most entries one fetch returns (DESIGN §5: "a few (6) fresh ones"). */
export const SHARE_FETCH_MAX = 6;
/** A server verified within this long is "fresh" and may be drawn at random, in ms. */
export const DEFAULT_SHARE_FRESH_MS = 30 * 60_000;
/** How often a listed server is dialled again, in ms. */
export const DEFAULT_SHARE_RECHECK_MS = 10 * 60_000;
/** A server not verified for this long is dropped, in ms (several failed rechecks). */
export const DEFAULT_SHARE_MAX_AGE_MS = 60 * 60_000;
/** Consecutive failed rechecks after which a listed server is dropped. One failure only hides it
 *  from fetch: a server restarting should not lose its place. */
export const DEFAULT_SHARE_MAX_FAILURES = 2;
/** A registration whose dial-back has not been confirmed or rejected within this long is forgotten,
 *  in ms (a dial-back takes at most a TLS handshake timeout, 5 s). */
export const DEFAULT_SHARE_PENDING_MS = 15_000;
/** Dial-backs in flight per kind: bounds the work a flood of registrations can cause. */
export const DEFAULT_SHARE_MAX_PENDING = 64;
/** Listed servers per source IP per kind: one host must not fill the kind's list. */
export const DEFAULT_SHARE_MAX_PER_IP = 8;

// ---- wire input limits ----

/** Longest app kind, in characters (same as a node record's MAX_KIND_CHARS). */
export const MAX_KIND_CHARS = 64;
/** Node id: hex SHA-256. */
export const NODE_ID_HEX_CHARS = 64;
/** SPKI pin: SHA-256. */
export const SPKI_BYTES = 32;
/** Largest payload of any app-service request: a kind, an id, a key and framing, with room. */
export const MAX_PUNCH_REQUEST_BYTES = 1024;
