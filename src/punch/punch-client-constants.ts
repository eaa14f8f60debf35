// Timing and limits of the punch itself (app side) and of the node's punch/share services (DESIGN §7; seed
// 000 §基本规则 "Listen + Dial", §信令协调). The brokering cores' constants are in punch-constants.ts.

// ---- one attempt ----

/** How long one attempt may take before it reports `connected: false`, in ms. Cone pairs connect in one or
 *  two round trips; the budget covers three QUIC Initial retransmissions (PTO ≈ 1 s, doubling). */
export const PUNCH_ATTEMPT_TIMEOUT_MS = 8_000;
/** Most a birthday-paradox spray may take, in ms. Its own budget is SPRAY_START_DELAY_MS + probes × interval
 *  + SPRAY_TAIL_MS (≈ 8.3 s with the default plan: 1024 probes every 5 ms); this caps odd plans. */
export const SPRAY_ATTEMPT_TIMEOUT_MS = 15_000;
/** Hole-opening datagrams: one every this many ms during the first PUNCH_OPEN_FAST_MS … */
export const PUNCH_OPEN_FAST_INTERVAL_MS = 50;
export const PUNCH_OPEN_FAST_MS = 1_000;
/** … then one every this many ms until the link is up (keeps the NAT filters open for QUIC retransmits). */
export const PUNCH_OPEN_SLOW_INTERVAL_MS = 250;
/** The dialer starts its QUIC handshake when the listener's first opener reaches it (both filters are then
 *  open, so the first Initial passes), or at the latest this many ms after it started sending. */
export const PUNCH_DIAL_WAIT_MS = 1_000;
/** The side that must send second (punch-order.ts) waits this long after the offer, in ms: long enough for the
 *  first sender's packet to have left its NAT even when it got its offer one node round trip later (the
 *  target of a punch gets the offer before the requester gets the answer). */
export const PUNCH_SECOND_SENDER_DELAY_MS = 300;
/** How long the listener waits for the dialer's hello once a QUIC connection came in, in ms. */
export const PUNCH_HELLO_TIMEOUT_MS = 3_000;
/** The spray listener starts probing this long after the offer, in ms, so the symmetric side's sockets have
 *  sent their first packets (a probe that arrives before a mapping exists is wasted). */
export const SPRAY_START_DELAY_MS = 200;
/** A spray attempt ends this long after the cone side's last probe of its round, in ms: time for the probe
 *  to land, the symmetric side's handshake from the socket that got it, and the hello. */
export const SPRAY_TAIL_MS = 3_000;
/** The symmetric side re-sends from each spray socket this often, in ms: keeps its mappings alive and gives
 *  the cone side's later probes something to meet. */
export const SPRAY_RESEND_INTERVAL_MS = 1_000;

// ---- opener datagram (src/punch/punch-packet.ts) ----

/** Size of a hole-opening datagram: the smallest size the shared socket hands to the raw path as "sn"
 *  (classify.ts: first byte bits 7–6 clear, 64..1072 bytes), so it reaches our handler and never QUIC. */
export const PUNCH_PACKET_BYTES = 64;

// ---- app side: node connection ----

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
/** How often the node expires idle members and old pairs, in ms. */
export const PUNCH_SWEEP_INTERVAL_MS = 10_000;
/** Last known address per node id, kept after it leaves so a rejoin from elsewhere is seen as a mapping
 *  change (signalling coordination); bounded, oldest forgotten first. */
export const MAX_REMEMBERED_ADDRESSES = 10_000;

// ---- share service ----

/** TCP dial-back timeout, in ms: the dial runs inside the share.register request, which the transport
 *  bounds at REQUEST_TIMEOUT_MS (5 s) for reading, handling and answering together. */
export const SHARE_DIAL_TIMEOUT_MS = 3_000;
/** How often the share service looks for entries due a recheck, in ms (the recheck interval itself is
 *  DEFAULT_SHARE_RECHECK_MS; this only bounds how late a due recheck starts). */
export const SHARE_SWEEP_INTERVAL_MS = 30_000;
/** Rechecks dialled per sweep: bounds the burst of outgoing TCP connections. */
export const SHARE_RECHECKS_PER_SWEEP = 64;
