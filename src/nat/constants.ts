// Wire facts and shared limits of the STUN2 NAT services and `findings probe` (DESIGN §6; STUN2 seed 000
// §提供的服务 1–2): the SN probe packet layout, and the edges both client and server keep.
// The probe timeout is the config key probe_timeout_s; values one file uses live in that file. The methods are
// the Nat service in proto/services.proto.

// ---- SN probe packet (DESIGN §6 "Probe packet (SN)") ----

/** Rnd16: random prefix of an SN probe, in bytes; its first byte also carries the source code (DESIGN §6). */
export const SN_RND_BYTES = 16;
/** HMAC-SHA256 tag length in bytes (RFC 2104 with SHA-256, FIPS 180-4). */
export const SN_MAC_BYTES = 32;
/** Smallest TmpN (random tail) in bytes (DESIGN §6: "TmpN 16–1024 random bytes"). */
export const SN_TMP_MIN_BYTES = 16;
/** Largest TmpN in bytes (DESIGN §6). With it the largest probe is 1072 bytes, under the 1232-byte UDP payload
 *  that IPv6's 1280-byte minimum MTU leaves, so probes are never fragmented. */
export const SN_TMP_MAX_BYTES = 1024;
/** Smallest valid SN probe: Rnd16 + MAC + shortest TmpN = 64 bytes. */
export const SN_MIN_BYTES = SN_RND_BYTES + SN_MAC_BYTES + SN_TMP_MIN_BYTES;
/** Largest valid SN probe: Rnd16 + MAC + longest TmpN = 1072 bytes. */
export const SN_MAX_BYTES = SN_RND_BYTES + SN_MAC_BYTES + SN_TMP_MAX_BYTES;
/** Length of the client's fresh probe key in bytes (DESIGN §6: "the client's fresh 32-byte key"). */
export const SN_KEY_BYTES = 32;
/** First-byte mask kept from Rnd16[0]: bits 5–2 stay random (DESIGN §6: `Rnd16[0] & 0x3C | source`).
 *  Clearing bits 7–6 makes the packet fail QUIC's fixed-bit test (bit 6, RFC 9000 §17); bits 1–0 are then
 *  filled with the source code. */
export const SN_FIRST_BYTE_RANDOM_MASK = 0x3c;
/** Bits 7–6 of the first byte: always clear in an SN probe (and in RFC 5389), set in every QUIC packet's bit 6
 *  (DESIGN §2 demultiplexing). */
export const SN_FIRST_BYTE_HIGH_MASK = 0xc0;
/** Bits 1–0 of the first byte: the probe's source code (DESIGN §6). */
export const SN_SOURCE_MASK = 0x03;

// ---- sessions and tokens ----

/** Session token length: 16 random bytes cannot be guessed by an off-path sender. */
export const NAT_TOKEN_BYTES = 16;
/** Cookie an ack carries and the client echoes over QUIC (address validation, like RFC 9000 §8.1). */
export const NAT_COOKIE_BYTES = 16;
/** Acks one hello address gets per session: a lost ack may be asked again by repeating the hello, but one
 *  datagram in never yields more than one datagram out. */
export const MAX_ACKS_PER_ADDRESS = 3;
/** Resends of a hello whose ack did not come, and the gap between them, in ms. */
export const HELLO_ATTEMPTS = 3;
export const HELLO_RETRY_MS = 300;
/** Gap between the probes of one burst (passage 2, NewPort 4, NewHost 3), in ms: spreads them over a short
 *  loss burst while the whole burst still ends in under 0.1 s. */
export const PROBE_SPACING_MS = 20;
/** nat.begin / nat.live-begin per client host (the router's policy in routes.ts): a sustained 1 per 2 s with
 *  bursts of 10 (a probe run opens one session, a retry a second). */
export const BEGIN_RATE_PER_S = 0.5;
export const BEGIN_BURST = 10;

// ---- servers ----

/** Servers on distinct IPs asked for the mapped address in the pre-probe (DESIGN §6 step 1). */
export const PRE_PROBE_MIN_SERVERS = 3;
/** Servers the client pre-probes at most (DESIGN §6: ≥ 3 on distinct IPs). */
export const MAX_PRE_PROBE_SERVERS = 5;
/** Servers a `nat.servers` answer carries at most. */
export const MAX_SERVERS_ANSWER = 16;

// ---- NewHost proof (DESIGN §6: proof that a live client asked, bound to the target and the key) ----

/** Leading zero bits of the proof of work: 2^16 SHA-256 on average, ~15 ms with Bun's hash (measured
 *  65 536 hashes in 13 ms on the dev box), so a client pays once per run while a node that wanted to aim the
 *  mesh at many addresses pays per address. */
export const NEWHOST_POW_BITS = 16;
/** How old (or how far ahead) a proof or an order may be, in ms: a fresh test uses it within seconds. */
export const NEWHOST_MAX_AGE_MS = 60_000;
/** Order id length; ids are remembered for NEWHOST_MAX_AGE_MS so an order cannot be replayed. */
export const NEWHOST_ORDER_ID_BYTES = 16;
/** Avoided IPs carried in a request: the client's servers plus a few. */
export const MAX_AVOID_IPS = 16;

// ---- STUN:Live (DESIGN §6 生存期) ----

/** Fresh sockets one lifetime session may register: the first-round delays (9) plus the refinement pool. */
export const LIVE_MAX_SOCKETS = 40;
/** Default delays at which the server probes each fresh lifetime socket, in seconds (DESIGN §6 生存期). They
 *  bracket the timeouts real NATs use (30 s, 60 s, 120 s, 180 s, 300 s; RFC 4787 REQ-5 asks ≥ 120 s). */
export const LIFETIME_DELAYS_S: readonly number[] = [10, 20, 30, 45, 60, 90, 120, 180, 300];
/** Default longest lifetime delay tried, in seconds: a mapping that lives longer is reported as "≥ max". */
export const LIFETIME_MAX_S = 300;

// ---- `findings probe` (nat/probe-client.ts) ----

/** After the server confirmed a burst was sent, "nothing arrived" is believed after this many ms at least… */
export const SILENCE_MIN_MS = 250;
/** …or this many smoothed round trips of the QUIC link, whichever is longer: a probe that was sent reaches
 *  us within about one RTT of the confirmation (it left before the confirmation did). */
export const SILENCE_RTTS = 4;
/** If no UDP answer came after this long, the client also asks over HTTPS whether TCP works, in ms: the answer
 *  says TCP works and how long a few round trips take (the UDP check's silence window is measured with it).
 *  Late enough that a path with UDP has answered the UDP check by then (no TLS handshake competing with the
 *  QUIC ones on a busy host), early enough to end inside the window on a UDP-blocked one. */
export const TCP_CHECK_AFTER_MS = 250;
/** The UDP check resends its requests to every server on a short schedule until one answers: the first gap in
 *  ms, doubling up to UDP_CHECK_MAX_GAP_MS (a lost datagram costs little; the silence window holds several). */
export const UDP_CHECK_FIRST_GAP_MS = 50;
export const UDP_CHECK_MAX_GAP_MS = 200;
/** With TCP's answer in, UDP is believed blocked once no UDP answer came within this many times the HTTPS
 *  whoami's duration (itself at least three round trips: TCP, TLS, the request, so ≥ 9 round trips) … */
export const UDP_BLOCKED_TCP_TIMES = 3;
/** … plus this margin, counted from the first UDP request, in ms. */
export const UDP_BLOCKED_MARGIN_MS = 200;
