// App bootstrap sessions waiting for their bind: issued by app.hello (seed 001 §从应用端的连接 step 4),
// taken once by app.bind on the pinned reconnect. Pure: time comes in as `now`.
import { bytesToHex } from "@noble/hashes/utils.js";

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
  // Map keeps insertion order: the first entry is always the oldest, so expiry and eviction sweep from the front.
  private readonly entries = new Map<string, Entry>();

  constructor(
    private readonly ttlMs = APP_SESSION_TTL_MS,
    private readonly max = MAX_APP_SESSIONS,
  ) {}

  get size(): number {
    return this.entries.size;
  }

  /** Records that `appKey` opened session `sessionId`. A repeated id is re-issued (moved to the back). */
  issue(sessionId: Uint8Array, appKey: Uint8Array, now: number): void {
    this.sweep(now);
    const id = bytesToHex(sessionId);
    this.entries.delete(id);
    while (this.entries.size >= this.max) this.entries.delete(this.entries.keys().next().value!);
    this.entries.set(id, { appKeyHex: bytesToHex(appKey), expiresAt: now + this.ttlMs });
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
    for (const [id, entry] of this.entries) {
      if (entry.expiresAt > now) break;
      this.entries.delete(id);
    }
  }
}
