// Wire facts and shared limits of the app services (methods: App, Punch, PunchLink, Share in proto/services.proto): app pool, punch brokering, the punch itself and the
// share registry (DESIGN §5, §7; seed 000 §应用池, §打洞协助, §基本规则 "Listen + Dial", §信令协调; seed 001 §分享池).
// Pool sizes are the config keys punch_xpool, peers_punch and share_xpool; values one file uses live in that file.
import { SN_MIN_BYTES } from "../nat/index.ts";

// ---- wire input limits ----

/** Fewest token bytes accepted from the wire (brief: 8+). */
export const MIN_PUNCH_TOKEN_BYTES = 8;
/** Most token bytes accepted from the wire. */
export const MAX_PUNCH_TOKEN_BYTES = 32;
/** Attempt id bytes: correlates both sides' logs and results. */
export const PUNCH_ATTEMPT_ID_BYTES = 16;
/** Node id: hex SHA-256. */
export const NODE_ID_HEX_CHARS = 64;
/** SPKI pin: SHA-256. */
export const SPKI_BYTES = 32;
/** Most entries one share fetch returns (DESIGN §5: "a few (6) fresh ones"). */
export const SHARE_FETCH_MAX = 6;
/** Size of a hole-opening datagram (punch-packet.ts): the smallest size the shared socket hands to the raw
 *  path as "sn" (classify.ts: first byte bits 7–6 clear, SN_MIN_BYTES..SN_MAX_BYTES), so it reaches our
 *  handler and never QUIC. */
export const PUNCH_PACKET_BYTES = SN_MIN_BYTES;

// ---- strategies beyond the seed (DESIGN §7: "many sockets on the symmetric side") ----

/** Sockets the symmetric side opens, each sending to the cone side: 384 fds stays well under the usual
 *  1024 soft limit and, with SPRAY_PROBES, gives ~99.8 % per round (birthday bound, Tailscale "How NAT
 *  traversal works" §"The benefits of birthdays"); half of all sprays meet within ~120 probes. */
export const SPRAY_SOCKETS = 384;
/** Probes the cone side sends to distinct random ports of the symmetric side's IP. */
export const SPRAY_PROBES = 1024;
/** Port range a NAT allocates mappings from: Linux masquerade maps ports ≥ 1024 into 1024–65535. */
export const SPRAY_PORT_MIN = 1024;
export const SPRAY_PORT_MAX = 65535;
/** Pacing of the cone side's probes, in ms: 1024 probes in ~3 s (≈ 330 new mappings a second) stays under
 *  typical NAT rate limits on new mappings and looks less like a port scan than a burst. */
export const SPRAY_PROBE_INTERVAL_MS = 3;
/** Ports probed first when the symmetric NAT allocates with a constant step: base + delta·k for
 *  k = 1..this. Twice SPRAY_SOCKETS leaves room for other hosts' mappings interleaving. */
export const SPRAY_PREDICT_WINDOW = 768;
/** Largest |delta| taken as a predictable step; larger steps are more likely coincidence. */
export const MAX_PREDICT_DELTA = 64;
/** Odds at or above which a spray plan is reported as expected to succeed. */
export const SPRAY_EXPECT_ODDS = 0.9;

// ---- one attempt (punch-attempt.ts) ----

/** How long one attempt may take before it reports `connected: false`, in ms. Cone pairs connect in one or
 *  two round trips; the budget covers three QUIC Initial retransmissions (PTO ≈ 1 s, doubling). */
export const PUNCH_ATTEMPT_TIMEOUT_MS = 8_000;
/** Most a birthday-paradox spray may take, in ms. Its own budget is SPRAY_START_DELAY_MS + probes × interval
 *  + SPRAY_TAIL_MS (≈ 6.2 s with the default plan: 1024 probes every 3 ms); this caps odd plans. */
export const SPRAY_ATTEMPT_TIMEOUT_MS = 15_000;
/** Hole-opening datagrams: one every this many ms during the first PUNCH_OPEN_FAST_MS (50 small datagrams a
 *  second: once a filter opens, the next one crosses within 20 ms) … */
export const PUNCH_OPEN_FAST_INTERVAL_MS = 20;
export const PUNCH_OPEN_FAST_MS = 1_000;
/** … then one every this many ms until the link is up (keeps the NAT filters open for QUIC retransmits). */
export const PUNCH_OPEN_SLOW_INTERVAL_MS = 250;
/** The dialer starts its QUIC handshake when the listener's first opener reaches it (both filters are then
 *  open, so the first Initial passes), or at the latest this many ms after it started sending. */
export const PUNCH_DIAL_WAIT_MS = 1_000;
/** A dialer's first QUIC handshake gives up after this many ms, each retry doubling it up to the QUIC handshake
 *  timeout: an Initial lost before the peer's filter opened is sent again sooner than QUIC's own first
 *  retransmission (about 1 s). */
export const PUNCH_FIRST_HANDSHAKE_TIMEOUT_MS = 300;
/** The side that must send second (punch-order.ts) waits for the first sender's packet to have left its NAT.
 *  The target of a punch gets its offer before the requester gets the answer (the node answers once the
 *  target acknowledged), about one node round trip apart. A second sender that asked for the punch is already
 *  that late: it waits only PUNCH_SECOND_SENDER_MIN_MS (the peer's own processing, a busy event loop); a
 *  pushed one waits that plus PUNCH_SECOND_SENDER_RTTS × its RTT to the node, or PUNCH_SECOND_SENDER_DELAY_MS
 *  when that RTT is not known. */
export const PUNCH_SECOND_SENDER_DELAY_MS = 300;
export const PUNCH_SECOND_SENDER_MIN_MS = 100;
export const PUNCH_SECOND_SENDER_RTTS = 3;
/** How long the listener waits for the dialer's hello once a QUIC connection came in, in ms. */
export const PUNCH_HELLO_TIMEOUT_MS = 3_000;
/** The spray listener starts probing this long after the offer, in ms, so the symmetric side's sockets have
 *  sent their first packets (a probe that arrives before a mapping exists is wasted; each socket sends as
 *  soon as it is bound). */
export const SPRAY_START_DELAY_MS = 100;
/** A spray attempt ends this long after the cone side's last probe of its round, in ms: time for the probe
 *  to land, the symmetric side's handshake from the socket that got it, and the hello. */
export const SPRAY_TAIL_MS = 3_000;
/** The symmetric side re-sends from each spray socket this often, in ms: keeps its mappings alive and gives
 *  the cone side's later probes something to meet. */
export const SPRAY_RESEND_INTERVAL_MS = 1_000;

// ---- app side: node connection (punch-client.ts) ----

/** Timeout of each bootstrap step and of join/punch requests to the node, in ms. */
export const PUNCH_NODE_STEP_TIMEOUT_MS = 4_000;
/** After the node link drops, the client bootstraps and joins again after this long, doubling up to the max (ms). */
export const PUNCH_REJOIN_MIN_MS = 500;
export const PUNCH_REJOIN_MAX_MS = 10_000;
/** Attempts one client runs at once (offers pushed by the node plus its own requests): bounds the sockets a
 *  flood of offers can make it open. */
export const MAX_CONCURRENT_ATTEMPTS = 16;

// ---- node side ----

/** How long the node waits for a target to acknowledge a pushed offer, in ms. A target that does not answer
 *  is left out of the requester's answer (it would only make the requester wait for nothing). */
export const OFFER_PUSH_TIMEOUT_MS = 2_000;

/** Raw streams a punched peer may open before our side of the attempt has finished (they wait, then are
 *  handed to the app; more are reset). */
export const MAX_EARLY_STREAMS = 16;
