// Sizes of the SN probes the NAT services send (DESIGN §6 "TmpN 16–1024 random bytes"; probe traffic never
// exceeds what the request cost): random length, kept short so a test's probes stay below its hello.

/** TmpN length range of the probes the service sends, in bytes (DESIGN §6 allows 16–1024): short probes
 *  keep the traffic a request causes below what it cost; the length still varies so probes have no fixed size. */
const PROBE_TMP_MIN_BYTES = 16;
const PROBE_TMP_MAX_BYTES = 48;
/** Largest probe the service sends: Rnd16 + MAC + the longest TmpN above. */
export const PROBE_MAX_BYTES = 16 + 32 + PROBE_TMP_MAX_BYTES;

/** A TmpN length drawn uniformly from PROBE_TMP_MIN_BYTES…PROBE_TMP_MAX_BYTES. */
export function randomProbeTmpLen(): number {
  const r = crypto.getRandomValues(new Uint8Array(1))[0]!;
  return PROBE_TMP_MIN_BYTES + (r % (PROBE_TMP_MAX_BYTES - PROBE_TMP_MIN_BYTES + 1));
}
