// Node side of the TCP server registry (share pool): registration verified by a TCP dial-back, fetch of a few
// fresh entries, periodic re-dials that hide and then drop servers that went away (seed 001 §应用节点
// "TCP公网服务器的登记", §分享池; DESIGN §5). Bookkeeping is the pure core share-pool.ts.
//
// Protocol (payloads in proto/punch.proto; pinned, bound app links over QUIC or WSS — an app without UDP
// bootstraps over WSS — and mesh links):
//   share.register  ShareRegister{kind, port, ip ""} → the node dials ip:port over TCP (ip = the link's
//                   source IP, the only one accepted) → ShareRegisterAnswer{listed}; REFUSED/FULL/RATE_LIMITED
//                   per share-pool.ts, NOT_FOUND when the dial-back fails.
//   share.fetch     ShareFetch{kind, max ≤ 6, hops} → ShareList{entries}; with hops > 0 (and room left after our
//                   own entries) the mesh is searched too (share-find.ts): each entry found comes from the node
//                   that lists it, and is dialled over TCP by us before it is answered (node_id = its holder).
//   share.find      mesh links only: the search itself (share-find.ts).
import { connect, isIP } from "node:net";
import { errorLine } from "../errors.ts";
import { PINNED_OR_MESH, perHost, type RpcContext, type RpcReply } from "../rpc/index.ts";
import type { Router, RouteTable } from "../rpc/index.ts";
import { Share } from "../wire/index.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import { ShareListSchema, ShareRegisterAnswerSchema } from "../wire/index.ts";
import { readShareFetch, readShareRegister, statusOfShareRefusal, MAX_PUNCH_REQUEST_BYTES } from "../punch/index.ts";
import type { Rand } from "../punch/index.ts";
import { createSharePool, type ShareRef, type SharePool } from "./pool.ts";
import { createShareFind, MAX_SHARE_FIND_REQUEST_BYTES, type ShareFindComponents } from "./share-find.ts";
import { createRateLimiter, linkOf } from "../mesh/index.ts";
import { MESH_ONLY, prefixOf } from "../rpc/index.ts";
import { BoundedMap, specialRangeOf, type Logger } from "../contracts/index.ts";

/** TCP dial-back timeout, in ms: the dial runs inside the share.register request, which the transport
 *  bounds at REQUEST_TIMEOUT_MS (5 s) for reading, handling and answering together. */
const SHARE_DIAL_TIMEOUT_MS = 3_000;
/** How often the share service looks for entries due a recheck, in ms (the recheck interval itself is
 *  DEFAULT_SHARE_RECHECK_MS; this only bounds how late a due recheck starts). */
const SHARE_SWEEP_INTERVAL_MS = 30_000;
/** Rechecks dialled per sweep: bounds the burst of outgoing TCP connections. */
const SHARE_RECHECKS_PER_SWEEP = 64;

/** Searches through the mesh one app host may start (each fans out over the mesh and dials what it finds). */
const SEARCHES_PER_HOST_PER_S = 1;
const SEARCH_BURST_PER_HOST = 5;
/** A searched share.fetch, mesh search and dials together, in ms: inside the transport's REQUEST_TIMEOUT_MS
 *  (5 s) for the whole request. The search takes at most FIND_HOP_TIMEOUT_MS per hop (3 s for 3 hops). */
const SEARCH_BUDGET_MS = 4_500;
/** The shortest dial of a found entry, in ms, whatever the search took. */
const MIN_FOUND_DIAL_MS = 500;
/** How long our own dial of a found entry is reused, in ms, and how many are kept. */
const FOUND_DIAL_CACHE_MS = 5 * 60_000;
/** A failed dial (maybe cut short by the budget) is reused for less long, in ms. */
const FOUND_DIAL_FAILURE_CACHE_MS = 60_000;
const MAX_FOUND_DIALS_CACHED = 1024;

/** How often a listed server is dialled again, in ms. */
const DEFAULT_SHARE_RECHECK_MS = 10 * 60_000;
/** A server not verified for this long is dropped, in ms (several failed rechecks). */
const DEFAULT_SHARE_MAX_AGE_MS = 60 * 60_000;

/** Dials ip:port over TCP; resolves true when the connection was accepted. Never rejects. */
export type TcpProbe = (addr: { ip: string; port: number }, timeoutMs: number) => Promise<boolean>;

export const tcpProbe: TcpProbe = ({ ip, port }, timeoutMs) =>
  new Promise((resolve) => {
    const sock = connect({ host: ip, port });
    const done = (ok: boolean) => {
      clearTimeout(timer);
      sock.removeAllListeners();
      sock.on("error", () => {});
      sock.destroy();
      resolve(ok);
    };
    const timer = setTimeout(() => done(false), timeoutMs);
    sock.once("connect", () => done(true));
    sock.once("error", () => done(false));
  });

export interface ShareServiceComponents {
  /** Serves share.register / share.fetch (the node's shared router: QUIC streams and WSS links). */
  udp: { readonly router: Router };
  /** The mesh, for searches of listed servers through mesh links (share.find); without it share.fetch answers
   *  this node's own entries only. */
  mesh?: Omit<ShareFindComponents, "local" | "now"> & { readonly router: Router };
  log?: Logger;
  /** @default tcpProbe */
  dial?: TcpProbe;
  /** @default Date.now */
  now?: () => number;
  /** @default Math.random */
  rand?: Rand;
}

export interface ShareServiceInit {
  /** Kinds served (stakes.ts servedKinds). */
  kinds: Iterable<string>;
  /** Servers per kind (config share_xpool). @default share_xpool of defaults.toml */
  capacity?: number;
  /** A listed server is dialled again after this long. @default DEFAULT_SHARE_RECHECK_MS (10 min) */
  recheckMs?: number;
  /** Not verified for this long → dropped. @default DEFAULT_SHARE_MAX_AGE_MS (60 min) */
  maxAgeMs?: number;
  /** Verified within this long = fresh. @default DEFAULT_SHARE_FRESH_MS (30 min) */
  freshMs?: number;
  /** Failed rechecks in a row that drop a server. @default DEFAULT_SHARE_MAX_FAILURES (2) */
  maxFailures?: number;
  /** How often due rechecks are started. @default SHARE_SWEEP_INTERVAL_MS (30 s) */
  sweepIntervalMs?: number;
  /** @default SHARE_DIAL_TIMEOUT_MS (3 s) */
  dialTimeoutMs?: number;
  /** Dial servers found through the mesh at special-range addresses (loopback, private, …: labs and
   *  devnets). Off, such entries of other nodes are left out and never dialled. @default false */
  allowSpecialTargets?: boolean;
}

export interface ShareService {
  start(): void;
  stop(): void;
  readonly pool: SharePool;
  counters(): { registered: number; refused: number; dialFailures: number; rechecks: number; dropped: number; searches: number; holdingsDropped: number; lies: number };
}

export function createShareService(components: ShareServiceComponents, init: ShareServiceInit): ShareService {
  const { udp, log } = components;
  const dial = components.dial ?? tcpProbe;
  const now = components.now ?? Date.now;
  const rand = components.rand ?? Math.random;
  const pool = createSharePool({ kinds: init.kinds, capacity: init.capacity, freshMs: init.freshMs, maxFailures: init.maxFailures });
  const recheckMs = init.recheckMs ?? DEFAULT_SHARE_RECHECK_MS;
  const maxAgeMs = init.maxAgeMs ?? DEFAULT_SHARE_MAX_AGE_MS;
  const dialTimeoutMs = init.dialTimeoutMs ?? SHARE_DIAL_TIMEOUT_MS;
  const counters = { registered: 0, refused: 0, dialFailures: 0, rechecks: 0, dropped: 0 };
  let sweep: ReturnType<typeof setInterval> | undefined;
  let running = false;
  let sweeping = false;

  const refuse = (status: Status, error: string): RpcReply => {
    counters.refused++;
    return { status, error };
  };

  async function onRegister(payload: Uint8Array, ctx: RpcContext): Promise<RpcReply> {
    if (!running) return refuse(Status.REFUSED, "the share registry is stopped");
    let reg: ReturnType<typeof readShareRegister>;
    try {
      reg = readShareRegister(payload);
    } catch (err) {
      return refuse(Status.BAD_REQUEST, errorLine(err));
    }
    const p = pool.pending({ kind: reg.kind, ip: reg.ip, port: reg.port, sourceIp: ctx.remote.ip }, now());
    if (p.status === "refused") return refuse(statusOfShareRefusal(p.reason), p.message);
    if (p.status === "listed") {
      return { status: Status.OK, payload: encodeMessage(ShareRegisterAnswerSchema, { ip: p.entry.ip, port: p.entry.port, listed: true }) };
    }
    // The dial-back: only a server that accepts a TCP connection from us is listed.
    const ok = await dial(p.ref, dialTimeoutMs);
    if (!ok) {
      pool.reject(p.ref, now());
      counters.dialFailures++;
      return refuse(Status.NOT_FOUND, `dial-back to ${p.ref.ip}:${p.ref.port} over TCP failed within ${dialTimeoutMs} ms; is the server listening on a public address?`);
    }
    const c = pool.confirm(p.ref, now());
    if (c.status === "full") return refuse(Status.FULL, c.message);
    if (c.status === "unknown") return refuse(Status.INTERNAL, "the registration expired while it was dialled");
    counters.registered++;
    log?.debug("TCP server listed", { kind: p.ref.kind, at: `${p.ref.ip}:${p.ref.port}` });
    return { status: Status.OK, payload: encodeMessage(ShareRegisterAnswerSchema, { ip: c.entry.ip, port: c.entry.port, listed: true }) };
  }

  const find = components.mesh
    ? createShareFind({ ...components.mesh, now, local: (kind) => pool.fetch(kind, now(), { rand }).map((e) => ({ ip: e.ip, port: e.port, verifiedAtMs: e.verifiedAt })) })
    : undefined;
  const searchLimiter = createRateLimiter({ ratePerS: SEARCHES_PER_HOST_PER_S, burst: SEARCH_BURST_PER_HOST });
  /** Our own TCP dials of found entries: address → when it answered (or not), so repeated searches dial once.
   *  Addresses come from other nodes' answers; past the cap the oldest dial goes first. */
  const dialled = new BoundedMap<string, { ok: boolean; at: number }>(MAX_FOUND_DIALS_CACHED);

  async function reachable(ip: string, port: number, timeoutMs: number): Promise<boolean> {
    const key = `${ip}|${port}`;
    const t = now();
    const hit = dialled.get(key);
    if (hit && t - hit.at < (hit.ok ? FOUND_DIAL_CACHE_MS : FOUND_DIAL_FAILURE_CACHE_MS)) return hit.ok;
    const ok = await dial({ ip, port }, timeoutMs);
    dialled.setNewest(key, { ok, at: now() });
    return ok;
  }

  /** Entries of other nodes, found through the mesh and dialled by us, for up to `room` more. */
  async function searched(kind: string, hops: number, room: number, have: Set<string>): Promise<{ ip: string; port: number; verifiedAtMs: bigint; nodeId: string }[]> {
    if (!find || room <= 0) return [];
    const t0 = now();
    const candidates: { ip: string; port: number; verifiedAtMs: bigint; nodeId: string }[] = [];
    for (const { nodeId, holding } of await find.search(kind, hops)) {
      for (const e of holding.entries) {
        const key = `${e.ip}|${e.port}`;
        if (have.has(key) || isIP(e.ip) === 0 || e.port < 1 || e.port > 65535) continue;
        // Another node's word must not make us dial our own loopback or private networks.
        if (!init.allowSpecialTargets && specialRangeOf(e.ip) !== null) continue;
        have.add(key);
        candidates.push({ ip: e.ip, port: e.port, verifiedAtMs: e.verifiedAtMs, nodeId });
      }
    }
    // Bounded: at most twice the room is dialled, all at once.
    const tried = candidates.slice(0, room * 2);
    // The whole request must end within the transport's REQUEST_TIMEOUT_MS: the dials get what the search left.
    const left = Math.max(MIN_FOUND_DIAL_MS, Math.min(dialTimeoutMs, SEARCH_BUDGET_MS - (now() - t0)));
    const ok = await Promise.all(tried.map((e) => reachable(e.ip, e.port, left)));
    return tried.filter((_, i) => ok[i]).slice(0, room);
  }

  async function onFetch(payload: Uint8Array, ctx: RpcContext): Promise<RpcReply> {
    if (!running) return refuse(Status.REFUSED, "the share registry is stopped");
    let f: ReturnType<typeof readShareFetch>;
    try {
      f = readShareFetch(payload);
    } catch (err) {
      return refuse(Status.BAD_REQUEST, errorLine(err));
    }
    if (!pool.serves(f.kind)) return refuse(Status.REFUSED, `kind ${JSON.stringify(f.kind)} is not served by this node`);
    const entries: { ip: string; port: number; verifiedAtMs: bigint; nodeId?: string }[] = pool.fetch(f.kind, now(), { rand, max: f.max }).map((e) => ({ ip: e.ip, port: e.port, verifiedAtMs: BigInt(e.verifiedAt) }));
    if (f.hops > 0 && entries.length < f.max && find) {
      if (!searchLimiter.allow(prefixOf(ctx.remote.ip, 32, 64), now())) return refuse(Status.RATE_LIMITED, "too many share searches; slow down");
      entries.push(...(await searched(f.kind, f.hops, f.max - entries.length, new Set(entries.map((e) => `${e.ip}|${e.port}`)))));
    }
    return { status: Status.OK, payload: encodeMessage(ShareListSchema, { kind: f.kind, entries }) };
  }

  /** Re-dials servers due a recheck; one failure hides a server from fetch, maxFailures drop it. */
  async function recheck(): Promise<void> {
    if (sweeping || !running) return;
    sweeping = true;
    try {
      const due = pool.staleEntries(now(), { recheckMs, max: SHARE_RECHECKS_PER_SWEEP });
      await Promise.all(
        due.map(async (e) => {
          const ref: ShareRef = { kind: e.kind, ip: e.ip, port: e.port };
          counters.rechecks++;
          const ok = await dial(e, dialTimeoutMs);
          if (!running) return;
          if (ok) pool.confirm(ref, now());
          else {
            const r = pool.reject(ref, now());
            if (r.status === "dropped") {
              counters.dropped++;
              log?.debug("TCP server dropped: dial-back failed", { kind: e.kind, at: `${e.ip}:${e.port}`, failures: r.failures });
            }
          }
        }),
      );
      counters.dropped += pool.expire(now(), maxAgeMs).length;
    } catch (err) {
      log?.warn("share recheck failed", { error: errorLine(err) });
    } finally {
      sweeping = false;
    }
  }

  // Bound app links only, over QUIC or WSS (the router answers others UNAUTHENTICATED). A register costs a TCP
  // dial-back, so few run at once; a fetch is a pool lookup.
  const policy = { transports: ["quic", "wss"], trust: PINNED_OR_MESH, maxPayloadBytes: MAX_PUNCH_REQUEST_BYTES } as const;
  const routes: RouteTable = [
    [Share.method.register, { ...policy, rate: perHost(2, 10), maxInFlight: 64, handler: onRegister }],
    [Share.method.fetch, { ...policy, rate: perHost(10, 40), maxInFlight: 256, handler: onFetch }],
  ];
  // The search between nodes: mesh links only, like mesh.find.
  const meshRoutes: RouteTable = find
    ? [[Share.method.find, { transports: ["wss"], trust: MESH_ONLY, maxPayloadBytes: MAX_SHARE_FIND_REQUEST_BYTES, rate: perHost(100, 500), maxInFlight: 64, handler: (payload, ctx) => find.onMeshRequest(payload, linkOf(ctx)) }]]
    : [];
  let removeMeshRoutes: (() => void) | undefined;
  let removeRoutes: (() => void) | undefined;

  return {
    pool,
    start() {
      if (running) return;
      running = true;
      removeRoutes = udp.router.addAll(routes);
      if (components.mesh && meshRoutes.length) removeMeshRoutes = components.mesh.router.addAll(meshRoutes);
      sweep = setInterval(() => void recheck(), init.sweepIntervalMs ?? SHARE_SWEEP_INTERVAL_MS);
      sweep.unref?.();
    },
    stop() {
      if (!running) return;
      running = false;
      removeRoutes?.();
      removeMeshRoutes?.();
      if (sweep) clearInterval(sweep);
      sweep = undefined;
    },
    counters: () => ({ ...counters, ...(find ? find.counters() : { searches: 0, holdingsDropped: 0, lies: 0 }) }),
  };
}
