// App bootstrap sessions waiting for their bind: issued by app.hello (seed 001 §从应用端的连接 step 4),
// taken once by app.bind on the pinned reconnect. Pure: time comes in as `now`.
import { bytesToHex } from "@noble/hashes/utils.js";
import { BoundedMap } from "../../contracts/index.ts";

/** Length of the app bootstrap session id (seed 001 §从应用端的连接 step 2: "标识ID"). */
export const APP_SESSION_ID_BYTES = 16;
/** Longest app kind named in a hello (AppSession.kind); a longer one is not sent, and ignored when received. */
export const MAX_HELLO_KIND_CHARS = 128;
/** How long a session id issued by app.hello may be bound by app.bind, in ms: the app reconnects at once
 *  (step 7), so a few request timeouts are plenty. */
const APP_SESSION_TTL_MS = 60_000;
/** Most app sessions waiting for their bind at once; the oldest is forgotten first. Bounds the memory an
 *  app.hello flood can take (each entry ~100 B). */
const MAX_APP_SESSIONS = 8_192;

interface Entry {
  appKeyHex: string;
  expiresAt: number;
}

export class AppSessionTable {
  // Age order: the first entry is always the oldest, so expiry and eviction (both O(1)) go from the front.
  private readonly entries: BoundedMap<string, Entry>;

  constructor(
    private readonly ttlMs = APP_SESSION_TTL_MS,
    max = MAX_APP_SESSIONS,
  ) {
    this.entries = new BoundedMap(max);
  }

  get size(): number {
    return this.entries.size;
  }

  /** Records that `appKey` opened session `sessionId`. A repeated id is re-issued (moved to the back). */
  issue(sessionId: Uint8Array, appKey: Uint8Array, now: number): void {
    this.sweep(now);
    const id = bytesToHex(sessionId);
    this.entries.setNewest(id, { appKeyHex: bytesToHex(appKey), expiresAt: now + this.ttlMs });
  }

  /** True (and forgets it) when `sessionId` was issued to `appKey` and has not expired. One use only. */
  take(sessionId: Uint8Array, appKey: Uint8Array, now: number): boolean {
    this.sweep(now);
    const id = bytesToHex(sessionId);
    const entry = this.entries.get(id);
    if (!entry || entry.appKeyHex !== bytesToHex(appKey)) return false;
    this.entries.delete(id);
    return true;
  }

  private sweep(now: number): void {
    this.entries.dropOldestWhile((entry) => entry.expiresAt <= now);
  }
}
