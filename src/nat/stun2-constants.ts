// Wire facts and defaults of the STUN2 NAT probe: SN probe packet layout, probe counts, lifetime search (DESIGN §6).
// TODO(lead): the SN layout facts (first-byte bits, source codes, sizes) belong in src/constants.ts (STYLE §4);
// they live here until the lead moves them, so nobody edits src/constants.ts concurrently.

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

/** ASCII label prefixed to the MAC input, so an SN tag can never be mistaken for a tag of another use of the key
 *  (DESIGN §6: HMAC-SHA256(Key, "STUN:Cone" ‖ Rnd16 ‖ TmpN)). */
export const SN_MAC_LABEL = "STUN:Cone";

/** First-byte mask kept from Rnd16[0]: bits 5–2 stay random (DESIGN §6: `Rnd16[0] & 0x3C | source`).
 *  Clearing bits 7–6 makes the packet fail QUIC's fixed-bit test (bit 6, RFC 9000 §17); bits 1–0 are then
 *  filled with the source code. */
export const SN_FIRST_BYTE_RANDOM_MASK = 0x3c;

/** Bits 7–6 of the first byte: always clear in an SN probe (and in RFC 5389), set in every QUIC packet's bit 6
 *  (DESIGN §2 demultiplexing). */
export const SN_FIRST_BYTE_HIGH_MASK = 0xc0;

/** Bits 1–0 of the first byte: the probe's source code (DESIGN §6). */
export const SN_SOURCE_MASK = 0x03;

/** SN source codes in bits 1–0 of the first byte (DESIGN §6). Code 3 is unassigned and rejected. */
export const SN_SOURCE = {
  /** sent by the source server on the client's live QUIC 4-tuple: does raw UDP pass at all? */
  passage: 0,
  /** sent by the source server from a new port of its own IP: address-dependent filtering test */
  newPort: 1,
  /** sent by a delegate node from its own IP: endpoint-independent filtering test; keyed with SHA-256(Key) */
  newHost: 2,
} as const;

/** Raw probes the source server sends on the live 4-tuple in the passage test (DESIGN §6 step 2). */
export const PASSAGE_PROBE_COUNT = 2;

/** Probes the source server sends from a new port in the formal test (DESIGN §6 step 3). */
export const NEWPORT_PROBE_COUNT = 4;

/** Delegates asked over the mesh to send NewHost probes (DESIGN §6 step 3: "≥ 2 other nodes"). */
export const NEWHOST_MIN_DELEGATES = 2;

/** NewHost probes each delegate sends (DESIGN §6 step 3). */
export const NEWHOST_PROBES_PER_DELEGATE = 3;

/** Servers on distinct IPs asked for the mapped address in the pre-probe (DESIGN §6 step 1). */
export const PRE_PROBE_MIN_SERVERS = 3;

/** How long the client waits for the negative answers (no NewHost, no NewPort, no passage), in ms
 *  (DESIGN §6: "seed: 6 s, configurable"). */
export const PROBE_TIMEOUT_MS = 6_000;

/** Default delays at which the server probes each fresh lifetime socket, in seconds (DESIGN §6 生存期). They
 *  bracket the timeouts real NATs use (30 s, 60 s, 120 s, 180 s, 300 s; RFC 4787 REQ-5 asks ≥ 120 s). */
export const LIFETIME_DELAYS_S: readonly number[] = [10, 20, 30, 45, 60, 90, 120, 180, 300];

/** Default longest lifetime delay tried, in seconds: a mapping that lives longer is reported as "≥ max". */
export const LIFETIME_MAX_S = 300;

/** Fresh sockets per refinement round between the last success and the first failure; 3 sockets cut the
 *  interval in 4 per round while staying cheap for the server. */
export const LIFETIME_REFINE_SOCKETS = 3;

/** Refinement stops once upper − lower is at most this many seconds; NAT timers tick in whole seconds and
 *  conntrack's garbage collection adds about a second of jitter. */
export const LIFETIME_RESOLUTION_S = 2;

/** Most refinement rounds after the first plan; each round costs about the upper bound in wall time. */
export const LIFETIME_MAX_REFINE_ROUNDS = 3;
