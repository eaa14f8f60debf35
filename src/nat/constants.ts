// Limits and timing of the NAT services (methods: the Nat service in proto/services.proto) and `findings probe` (DESIGN §6; STUN2 seed 000 §提供的服务 1–2).
// Counts and layouts of the SN probe itself are in stun2-constants.ts; these are the service's own edges.

// ---- sessions and tokens ----

/** Session token length: 16 random bytes cannot be guessed by an off-path sender. */
export const NAT_TOKEN_BYTES = 16;
/** Cookie an ack carries and the client echoes over QUIC (address validation, like RFC 9000 §8.1). */
export const NAT_COOKIE_BYTES = 16;
/** A STUN:Cone session (and its new-port socket) lives this long after nat.begin, in ms: the whole test takes
 *  at most the probe timeout (6 s by default) plus a retry with another source server. */
export const FORMAL_SESSION_TTL_MS = 20_000;
/** STUN:Cone sessions one QUIC connection may hold at once (a retry opens a second one). */
export const MAX_FORMAL_SESSIONS_PER_CONNECTION = 2;
/** STUN:Cone sessions open on a node at once: each holds one ephemeral UDP socket. */
export const MAX_FORMAL_SESSIONS = 256;
/** Passage requests per session: the client may repeat one if both probes were lost. */
export const MAX_PASSAGE_PER_SESSION = 2;
/** Acks one hello address gets per session: a lost ack may be asked again by repeating the hello, but one
 *  datagram in never yields more than one datagram out. */
export const MAX_ACKS_PER_ADDRESS = 3;

// ---- datagram sizes (anti-amplification: probe traffic never exceeds what the request cost) ----

/** Smallest formal hello, in bytes. The formal step sends one ack (< 100 B) and 4 NewPort + MAX_DELEGATES × 3
 *  NewHost probes of at most PROBE_MAX_BYTES each (≤ 960 B) to that address: the hello alone (1072 B, the largest
 *  SN datagram) costs the client more than everything it makes the network send there. */
export const FORMAL_HELLO_BYTES = 1072;
/** Smallest hello of the new-port mapping test and of a lifetime socket: each gets one ack (and a lifetime
 *  socket one probe), both under 160 bytes. */
export const SMALL_HELLO_BYTES = 256;
/** TmpN length range of the probes the service sends, in bytes (DESIGN §6 allows 16–1024): short probes
 *  keep the traffic a request causes below what it cost; the length still varies so probes have no fixed size. */
export const PROBE_TMP_MIN_BYTES = 16;
export const PROBE_TMP_MAX_BYTES = 48;
/** Largest probe the service sends: Rnd16 + MAC + the longest TmpN above. */
export const PROBE_MAX_BYTES = 16 + 32 + PROBE_TMP_MAX_BYTES;

// ---- probe timing ----

/** Gap between the probes of one burst (passage 2, NewPort 4, NewHost 3), in ms: spreads them over a short
 *  loss burst while the whole burst still ends in under 0.1 s. */
export const PROBE_SPACING_MS = 20;
/** How long a source server waits for its delegates' answers, in ms (one mesh round trip plus their burst). */
export const DELEGATE_TIMEOUT_MS = 2_000;
/** Delegates asked per formal step (DESIGN §6: "≥ 2 other nodes"); more would break the traffic budget below. */
export const MAX_DELEGATES = 2;

// ---- NewHost proof (DESIGN §6: proof that a live client asked; issue 5: bound to the target and the key) ----

/** Seal purpose of a NewHostOrder: its own label, so no other sealed box can pass as an order. */
export const NEWHOST_SEAL_PURPOSE = "findings/v1/nat-newhost";
/** Label hashed first in the client's proof of work. */
export const NEWHOST_POW_LABEL = "findings/v1/newhost-pow";
/** Leading zero bits of the proof of work: 2^16 SHA-256 on average, ~15 ms with Bun's hash (measured
 *  65 536 hashes in 13 ms on the dev box), so a client pays once per run while a node that wanted to aim the
 *  mesh at many addresses pays per address. */
export const NEWHOST_POW_BITS = 16;
/** How old (or how far ahead) a proof or an order may be, in ms: a fresh test uses it within seconds. */
export const NEWHOST_MAX_AGE_MS = 60_000;
/** Nonce length of the proof of work. */
export const NEWHOST_POW_NONCE_BYTES = 8;
/** Order id length; ids are remembered for NEWHOST_MAX_AGE_MS so an order cannot be replayed. */
export const NEWHOST_ORDER_ID_BYTES = 16;
/** Largest NewHostDelegation / NewHostOrder accepted, in bytes (addresses, keys, a few avoided IPs). */
export const MAX_NEWHOST_ORDER_BYTES = 2048;
/** Avoided IPs carried in a request: the client's servers plus a few. */
export const MAX_AVOID_IPS = 16;

// ---- rate limits (abuse control) ----

/** nat.begin / nat.live-begin per client host (the router's policy in routes.ts): a sustained 1 per 2 s with
 *  bursts of 10 (a probe run opens one session, a retry a second). */
export const BEGIN_RATE_PER_S = 0.5;
export const BEGIN_BURST = 10;
/** NewHost orders a delegate accepts per target IP: 1 per second, bursts of 20 (a run asks each delegate once). */
export const NEWHOST_PER_TARGET_IP_RATE_PER_S = 1;
export const NEWHOST_PER_TARGET_IP_BURST = 20;
/** NewHost orders a delegate accepts per source node: 5 per second, bursts of 50. */
export const NEWHOST_PER_SOURCE_RATE_PER_S = 5;
export const NEWHOST_PER_SOURCE_BURST = 50;
/** The same target ip:port is probed by a delegate at most once in this window, in ms. */
export const NEWHOST_TARGET_DEDUP_MS = 10_000;
/** Most rate buckets / remembered ids held at once (memory bound under a flood). */
export const MAX_RATE_ENTRIES = 8192;

// ---- STUN:Live (DESIGN §6 生存期) ----

/** Fresh sockets one lifetime session may register: the first-round delays (9) plus the refinement pool. */
export const LIVE_MAX_SOCKETS = 40;
/** Longest delay a server schedules, in ms: the default plan's 300 s plus slack. */
export const LIVE_MAX_DELAY_MS = 310_000;
/** A lifetime session is dropped this long after its longest possible delay, in ms. */
export const LIVE_SESSION_SLACK_MS = 30_000;
/** Lifetime sessions one client IP may hold at once. */
export const MAX_LIVE_SESSIONS_PER_IP = 4;
/** Lifetime sessions on a node at once (each holds up to LIVE_MAX_SOCKETS timers). */
export const MAX_LIVE_SESSIONS = 256;

// ---- client ----

/** Default wait for negative answers in ms (seed 000: 6 s; config probe_timeout_s, flag --timeout). */
export const DEFAULT_PROBE_TIMEOUT_MS = 6_000;
/** After the server confirmed a burst was sent, "nothing arrived" is believed after this many ms at least… */
export const SILENCE_MIN_MS = 250;
/** …or this many smoothed round trips of the QUIC link, whichever is longer: a probe that was sent reaches
 *  us within about one RTT of the confirmation (it left before the confirmation did). */
export const SILENCE_RTTS = 4;
/** If no QUIC answer came after this long, the client also asks over HTTPS whether TCP works, in ms. */
export const TCP_CHECK_AFTER_MS = 1_000;
/** Resends of a hello whose ack did not come, and the gap between them, in ms. */
export const HELLO_ATTEMPTS = 3;
export const HELLO_RETRY_MS = 300;
/** Servers the client pre-probes at most (DESIGN §6: ≥ 3 on distinct IPs). */
export const MAX_PRE_PROBE_SERVERS = 5;
/** Servers a `nat.servers` answer carries at most. */
export const MAX_SERVERS_ANSWER = 16;

/** Lifetime client: a scheduled probe that has not arrived this long after its due time counts as lost, ms.
 *  Covers timer lateness on the server (event loop) and the path. */
export const LIVE_GRACE_MS = 1_000;
/** Lifetime client: the refinement pool. Sockets are opened at growing intervals (gap = max(1 s, age/5)) so
 *  that when the first failure brackets the lifetime between two first-round delays, pool sockets of every
 *  age inside the bracket exist and can be probed at once, at ~20 % resolution. */
export const LIVE_POOL_MIN_GAP_MS = 1_000;
export const LIVE_POOL_GAP_FRACTION = 0.2;

// ---- own class ----

/** A serving node probes its own NAT this often, in ms (its address or its router may change). */
export const SELF_PROBE_INTERVAL_MS = 30 * 60_000;
/** Until the first self-probe succeeded, it is retried this often, in ms (peers come up one by one). */
export const SELF_PROBE_RETRY_MS = 5_000;
