// Share pool: public TCP servers of app kinds, listed only after the node dialled them back (seed 001
// §应用节点 "TCP公网服务器的登记", §分享池; DESIGN §5 "registration verified by dialing the server back; fetch
// returns a few (6) fresh ones").
//
// Flow, pure bookkeeping (the caller owns sockets and timers):
//   1. pending({kind, ip, port, sourceIp}, now) → "dial": the caller dials ip:port (TCP connect);
//   2. confirm(ref, now) when the dial worked → listed; reject(ref, now) when it did not → forgotten.
//   Listed servers are dialled again: staleEntries(now, recheckMs) names the due ones (and marks them
//   checked, so a second call does not hand them out again); confirm/reject record the outcome. One failed
//   recheck hides a server from fetch; DEFAULT_SHARE_MAX_FAILURES in a row drop it.
// A registration must name the connection's own source IP: otherwise anyone could make the node dial and
// advertise a third party (the same rule as DESIGN §6 "probes go only to an address the requester proved
// it owns"). Dedup is by kind + ip:port.
import { isIP } from "node:net";
import { normalizeIp } from "../nat/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { SHARE_FETCH_MAX } from "../punch/index.ts";
import type { Rand } from "../punch/index.ts";

/** A server verified within this long is "fresh" and may be drawn at random, in ms. */
const DEFAULT_SHARE_FRESH_MS = 30 * 60_000;
/** Consecutive failed rechecks after which a listed server is dropped. One failure only hides it
 *  from fetch: a server restarting should not lose its place. */
const DEFAULT_SHARE_MAX_FAILURES = 2;
/** A registration whose dial-back has not been confirmed or rejected within this long is forgotten,
 *  in ms (a dial-back takes at most a TLS handshake timeout, 5 s). */
const DEFAULT_SHARE_PENDING_MS = 15_000;
/** Dial-backs in flight per kind: bounds the work a flood of registrations can cause. */
const DEFAULT_SHARE_MAX_PENDING = 64;
/** Listed servers per source IP per kind: one host must not fill the kind's list. */
const DEFAULT_SHARE_MAX_PER_IP = 8;

export interface ShareRef {
  kind: string;
  ip: string;
  port: number;
}

export interface ShareEntry {
  readonly kind: string;
  readonly ip: string;
  readonly port: number;
  readonly registeredAt: number;
  /** Last successful dial-back. */
  readonly verifiedAt: number;
  /** Failed rechecks since the last success. */
  readonly failures: number;
  /** When staleEntries last handed it out for a recheck; null = never. */
  readonly lastCheckAt: number | null;
}

export interface SharePendingInput extends ShareRef {
  /** The source IP of the registering connection; `ip` "" means this one. */
  sourceIp: string;
}

export type ShareRefusal = "kind-not-served" | "bad-address" | "not-your-address" | "full" | "too-many-pending" | "too-many-per-ip" | "in-progress";

export type PendingResult =
  | { status: "dial"; ref: ShareRef }
  | { status: "listed"; entry: ShareEntry }
  | { status: "refused"; reason: ShareRefusal; message: string };

export type ConfirmResult = { status: "listed" | "refreshed"; entry: ShareEntry } | { status: "unknown" } | { status: "full"; message: string };

export type RejectResult = { status: "dropped" | "kept"; failures: number } | { status: "unknown" };

export interface SharePoolInit {
  /** Kinds served (stakes.ts servedKinds). */
  kinds: Iterable<string>;
  /** Listed servers per kind (config `share_xpool`). @default share_xpool of defaults.toml */
  capacity?: number;
  /** @default DEFAULT_SHARE_MAX_PENDING (64) */
  maxPending?: number;
  /** @default DEFAULT_SHARE_MAX_PER_IP (8) */
  maxPerIp?: number;
  /** @default DEFAULT_SHARE_PENDING_MS (15 s) */
  pendingMs?: number;
  /** @default DEFAULT_SHARE_MAX_FAILURES (2) */
  maxFailures?: number;
  /** Verified within this long = fresh (drawn at random by fetch). @default DEFAULT_SHARE_FRESH_MS (30 min) */
  freshMs?: number;
}

export interface SharePool {
  readonly capacity: number;
  serves(kind: string): boolean;
  pending(input: SharePendingInput, now: number): PendingResult;
  confirm(ref: ShareRef, now: number): ConfirmResult;
  reject(ref: ShareRef, now: number): RejectResult;
  /** Up to `max` (≤ SHARE_FETCH_MAX) listed servers without a failed recheck: fresh ones at random, then
   *  the most recently verified. */
  fetch(kind: string, now: number, options: { rand: Rand; max?: number }): ShareEntry[];
  /** Listed servers not verified for `recheckMs` and not handed out for a recheck within it, oldest first. */
  staleEntries(now: number, options: { recheckMs: number; max?: number }): ShareEntry[];
  drop(ref: ShareRef): boolean;
  /** Drops listed servers not verified for `maxAgeMs` and registrations pending longer than pendingMs. */
  expire(now: number, maxAgeMs: number): ShareEntry[];
  get(ref: ShareRef): ShareEntry | undefined;
  list(kind: string): ShareEntry[];
  /** Listed servers per served kind (zeros included), for /status. */
  counts(): Record<string, number>;
}

interface Pending {
  ref: ShareRef;
  since: number;
}

export function createSharePool(init: SharePoolInit): SharePool {
  const capacity = init.capacity ?? DEFAULTS.share_xpool;
  const maxPending = init.maxPending ?? DEFAULT_SHARE_MAX_PENDING;
  const maxPerIp = init.maxPerIp ?? DEFAULT_SHARE_MAX_PER_IP;
  const pendingMs = init.pendingMs ?? DEFAULT_SHARE_PENDING_MS;
  const maxFailures = init.maxFailures ?? DEFAULT_SHARE_MAX_FAILURES;
  const freshMs = init.freshMs ?? DEFAULT_SHARE_FRESH_MS;
  /** kind → "ip|port" → entry */
  const listed = new Map<string, Map<string, ShareEntry>>();
  /** kind → "ip|port" → pending dial-back */
  const pendings = new Map<string, Map<string, Pending>>();
  for (const kind of init.kinds) {
    listed.set(kind, new Map());
    pendings.set(kind, new Map());
  }

  const addrKey = (ip: string, port: number) => `${ip}|${port}`;

  /** Normalised ref, or null when the address is not an IP and a port. */
  function normal(ref: ShareRef): ShareRef | null {
    if (isIP(ref.ip) === 0 || !Number.isInteger(ref.port) || ref.port < 1 || ref.port > 65535) return null;
    return { kind: ref.kind, ip: normalizeIp(ref.ip), port: ref.port };
  }

  function dropExpiredPending(kind: string, now: number): void {
    const p = pendings.get(kind)!;
    for (const [k, v] of p) if (now - v.since > pendingMs) p.delete(k);
  }

  function perIp(kind: string, ip: string): number {
    let n = 0;
    for (const e of listed.get(kind)!.values()) if (e.ip === ip) n++;
    for (const v of pendings.get(kind)!.values()) if (v.ref.ip === ip) n++;
    return n;
  }

  function refuse(reason: ShareRefusal, message: string): PendingResult {
    return { status: "refused", reason, message };
  }

  function find(ref: ShareRef): { ref: ShareRef; key: string } | null {
    if (!listed.has(ref.kind)) return null;
    const n = normal(ref);
    return n ? { ref: n, key: addrKey(n.ip, n.port) } : null;
  }

  return {
    capacity,
    serves: (kind) => listed.has(kind),

    pending(input, now) {
      const list = listed.get(input.kind);
      if (!list) return refuse("kind-not-served", `kind ${JSON.stringify(input.kind)} is not served by this node`);
      if (isIP(input.sourceIp) === 0) return refuse("bad-address", `source ${JSON.stringify(input.sourceIp)} is not an IP address`);
      const source = normalizeIp(input.sourceIp);
      const ref = normal({ kind: input.kind, ip: input.ip === "" ? source : input.ip, port: input.port });
      if (!ref) return refuse("bad-address", `${JSON.stringify(input.ip)} port ${input.port} is not an IP address and a port 1..65535`);
      if (ref.ip !== source) return refuse("not-your-address", `only the connection's own IP ${source} can be registered, not ${ref.ip}`);
      const key = addrKey(ref.ip, ref.port);
      dropExpiredPending(ref.kind, now);
      const pend = pendings.get(ref.kind)!;
      if (pend.has(key)) return refuse("in-progress", `a dial-back to ${ref.ip}:${ref.port} is already under way`);
      const known = list.get(key);
      // Listed and not yet due for a recheck: nothing to dial.
      if (known && known.failures === 0 && now - known.verifiedAt < freshMs) return { status: "listed", entry: known };
      if (!known) {
        if (list.size >= capacity) return refuse("full", `share pool for kind ${JSON.stringify(ref.kind)} is full (${capacity} servers)`);
        if (perIp(ref.kind, ref.ip) >= maxPerIp) return refuse("too-many-per-ip", `${ref.ip} already has ${maxPerIp} servers of ${JSON.stringify(ref.kind)} listed or pending`);
      }
      if (pend.size >= maxPending) return refuse("too-many-pending", `${maxPending} dial-backs are under way for ${JSON.stringify(ref.kind)}; retry shortly`);
      pend.set(key, { ref, since: now });
      return { status: "dial", ref };
    },

    confirm(r, now) {
      const f = find(r);
      if (!f) return { status: "unknown" };
      const list = listed.get(f.ref.kind)!;
      const pend = pendings.get(f.ref.kind)!;
      const wasPending = pend.delete(f.key);
      const known = list.get(f.key);
      if (known) {
        const entry: ShareEntry = { ...known, verifiedAt: now, failures: 0 };
        list.set(f.key, entry);
        return { status: "refreshed", entry };
      }
      if (!wasPending) return { status: "unknown" };
      if (list.size >= capacity) return { status: "full", message: `share pool for kind ${JSON.stringify(f.ref.kind)} is full (${capacity} servers)` };
      const entry: ShareEntry = { kind: f.ref.kind, ip: f.ref.ip, port: f.ref.port, registeredAt: now, verifiedAt: now, failures: 0, lastCheckAt: null };
      list.set(f.key, entry);
      return { status: "listed", entry };
    },

    reject(r, _now) {
      const f = find(r);
      if (!f) return { status: "unknown" };
      const list = listed.get(f.ref.kind)!;
      const wasPending = pendings.get(f.ref.kind)!.delete(f.key);
      const known = list.get(f.key);
      if (!known) return wasPending ? { status: "dropped", failures: 1 } : { status: "unknown" };
      const failures = known.failures + 1;
      if (failures >= maxFailures) {
        list.delete(f.key);
        return { status: "dropped", failures };
      }
      list.set(f.key, { ...known, failures });
      return { status: "kept", failures };
    },

    fetch(kind, now, options) {
      const list = listed.get(kind);
      if (!list) return [];
      const max = Math.min(SHARE_FETCH_MAX, Math.max(0, Math.floor(options.max ?? SHARE_FETCH_MAX)));
      const healthy = [...list.values()].filter((e) => e.failures === 0);
      const fresh = healthy.filter((e) => now - e.verifiedAt <= freshMs);
      const older = healthy.filter((e) => now - e.verifiedAt > freshMs).sort((a, b) => b.verifiedAt - a.verifiedAt);
      const out: ShareEntry[] = [];
      for (let i = 0; i < fresh.length && out.length < max; i++) {
        const j = i + Math.floor(options.rand() * (fresh.length - i));
        [fresh[i], fresh[j]] = [fresh[j]!, fresh[i]!];
        out.push(fresh[i]!);
      }
      for (const e of older) {
        if (out.length >= max) break;
        out.push(e);
      }
      return out;
    },

    staleEntries(now, options) {
      const { recheckMs } = options;
      const max = options.max ?? Number.POSITIVE_INFINITY;
      const due: ShareEntry[] = [];
      for (const list of listed.values()) {
        for (const e of list.values()) {
          if (now - e.verifiedAt < recheckMs) continue;
          if (e.lastCheckAt !== null && now - e.lastCheckAt < recheckMs) continue;
          due.push(e);
        }
      }
      due.sort((a, b) => a.verifiedAt - b.verifiedAt);
      const out = due.slice(0, max).map((e) => {
        const marked: ShareEntry = { ...e, lastCheckAt: now };
        listed.get(e.kind)!.set(addrKey(e.ip, e.port), marked);
        return marked;
      });
      return out;
    },

    drop(r) {
      const f = find(r);
      if (!f) return false;
      const a = listed.get(f.ref.kind)!.delete(f.key);
      const b = pendings.get(f.ref.kind)!.delete(f.key);
      return a || b;
    },

    expire(now, maxAgeMs) {
      const removed: ShareEntry[] = [];
      for (const [kind, list] of listed) {
        dropExpiredPending(kind, now);
        for (const [k, e] of list) {
          if (now - e.verifiedAt > maxAgeMs) {
            list.delete(k);
            removed.push(e);
          }
        }
      }
      return removed;
    },

    get(r) {
      const f = find(r);
      return f ? listed.get(f.ref.kind)!.get(f.key) : undefined;
    },

    list: (kind) => [...(listed.get(kind)?.values() ?? [])],

    counts() {
      const out: Record<string, number> = {};
      for (const kind of [...listed.keys()].sort()) out[kind] = listed.get(kind)!.size;
      return out;
    },
  };
}
