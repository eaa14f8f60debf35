// Sizes of the SN probes the NAT services send (DESIGN §6 "TmpN 16–1024 random bytes"; issue 5 "probe traffic never
// exceeds what the request cost"): random length, kept short so a test's probes stay below its hello.
import { PROBE_TMP_MAX_BYTES, PROBE_TMP_MIN_BYTES } from "./constants.ts";

/** A TmpN length drawn uniformly from PROBE_TMP_MIN_BYTES…PROBE_TMP_MAX_BYTES. */
export function randomProbeTmpLen(): number {
  const r = crypto.getRandomValues(new Uint8Array(1))[0]!;
  return PROBE_TMP_MIN_BYTES + (r % (PROBE_TMP_MAX_BYTES - PROBE_TMP_MIN_BYTES + 1));
}
