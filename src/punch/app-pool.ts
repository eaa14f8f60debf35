// App pool: the live app connections per kind, for punch brokering and signalling coordination (seed 000
// §应用池, §定向打洞 "连接映射表", §信令协调; seed 001 §应用池; DESIGN §5, §7).
//
// Pure bookkeeping: no sockets, time comes in as `now` (ms). One member per (kind, node id); a node may be
// in several kinds' pools (seed 000 §应用池: punching between different kinds is possible). A rejoin with
// the same node id replaces the member and reports whether its address changed: that is the trigger for
// re-brokering its recent punches (punch-pairs.ts). The caller binds node ids to the connection's
// bootstrap key (punch-messages.ts checkJoinIdentity) and the transport binds one key per connection, so one
// connection holds one identity. Two caps keep one stranger from holding more than a share of the pool:
// memberships per connection (over all kinds) and members of one kind from one source prefix.
import type { NatClassName } from "../nat/index.ts";
import { normalizeIp } from "../nat/index.ts";
import { prefixOf } from "../rpc/index.ts";
import { DEFAULTS } from "../config/index.ts";

export interface AppAddress {
  ip: string;
  port: number;
}

export interface AppMember {
  readonly nodeId: string;
  readonly kind: string;
  /** From the app's own probe; null = not probed (it can then only reach Public/FullC peers). */
  readonly nat: NatClassName | null;
  /** SHA-256 of the app's certificate SPKI: the punched peer pins it. */
  readonly spki: Uint8Array;
  /** The app's public address as this node sees it (the QUIC connection's remote address). */
  readonly address: AppAddress;
  /** The transport's id of the QUIC connection the member joined on. */
  readonly connectionId: string;
  /** Symmetric NATs only: constant port allocation step, when the app's probe saw one. */
  readonly portDelta: number | null;
  readonly joinedAt: number;
  readonly lastSeen: number;
}

export type JoinInput = Omit<AppMember, "joinedAt" | "lastSeen" | "portDelta"> & { portDelta?: number | null };

export type JoinResult =
  | { status: "joined"; member: AppMember }
  | {
      status: "rejoined";
      member: AppMember;
      previous: AppMember;
      /** The public address differs from the previous membership's: re-broker its punches. */
      addressChanged: boolean;
      /** The member came back on another connection; the previous one no longer holds this membership. */
      connectionChanged: boolean;
    }
  | { status: "full"; kind: string; capacity: number; message: string }
  /** The connection or the source prefix already holds its share (maxPerConnection, maxPerPrefix). */
  | { status: "over-share"; kind: string; message: string }
  | { status: "kind-not-served"; kind: string; message: string };

export interface AppPoolInit {
  /** Kinds served (stakes.ts servedKinds). */
  kinds: Iterable<string>;
  /** Members per kind (config `punch_xpool`). @default punch_xpool of defaults.toml */
  capacity?: number;
  /** Memberships one connection may hold over all kinds (config `punch_per_conn`). @default unlimited */
  maxPerConnection?: number;
  /** Members of one kind whose addresses share a source prefix (config `punch_per_prefix`). @default unlimited */
  maxPerPrefix?: number;
  /** The source prefix of an address. @default sourcePrefix (IPv4 /24, IPv6 /48) */
  prefixOf?: (ip: string) => string;
}

export interface AppPool {
  readonly capacity: number;
  /** Members over all kinds. */
  readonly size: number;
  serves(kind: string): boolean;
  join(member: JoinInput, now: number): JoinResult;
  /** Removes every membership held by the connection (it closed). */
  leave(connectionId: string): AppMember[];
  /** Removes a node's membership in `kind`, or in every kind. */
  remove(nodeId: string, kind?: string): AppMember[];
  get(kind: string, nodeId: string): AppMember | undefined;
  /** Directed punch (seed 000 §定向打洞 "连接映射表"): the node's membership in `kind`, or without a kind
   *  the most recently seen of its memberships. */
  byId(nodeId: string, kind?: string): AppMember | undefined;
  /** Members of one kind, in join order. */
  members(kind: string): AppMember[];
  /** Members on one connection. */
  byConnection(connectionId: string): AppMember[];
  /** Marks the connection's members as seen (a request or keep-alive arrived); returns how many. */
  seen(connectionId: string, now: number): number;
  /** A member's public address changed (QUIC migration, NAT rebinding): updates every membership of the
   *  node; true when the address differs from the stored one. */
  updateAddress(nodeId: string, address: AppAddress, now: number): boolean;
  /** Removes members not seen for `idleMs`. */
  expire(now: number, idleMs: number): AppMember[];
  /** Members per served kind (zeros included), for /status. */
  counts(): Record<string, number>;
}

/** Same ip:port; IPs compare in canonical form (IPv4-mapped IPv6 folded, RFC 5952). */
export function sameAddress(a: AppAddress, b: AppAddress): boolean {
  return a.port === b.port && (a.ip === b.ip || normalizeIp(a.ip) === normalizeIp(b.ip));
}

/** The prefix one operator usually holds: an IPv4 /24, an IPv6 /48 (a site; RFC 6177 §2). */
export function sourcePrefix(ip: string): string {
  return prefixOf(normalizeIp(ip), 24, 48);
}

export function createAppPool(init: AppPoolInit): AppPool {
  const capacity = init.capacity ?? DEFAULTS.punch_xpool;
  if (!Number.isInteger(capacity) || capacity < 1) throw new RangeError(`app pool capacity ${capacity} must be a positive integer`);
  const maxPerConnection = init.maxPerConnection ?? Infinity;
  const maxPerPrefix = init.maxPerPrefix ?? Infinity;
  const prefixKey = init.prefixOf ?? sourcePrefix;
  /** kind → node id → member (Map keeps join order). */
  const pools = new Map<string, Map<string, AppMember>>();
  for (const kind of init.kinds) pools.set(kind, new Map());
  /** node id → kinds it is in. */
  const kindsOf = new Map<string, Set<string>>();
  /** connection id → "kind\0nodeId" keys. */
  const byConn = new Map<string, Set<string>>();
  let size = 0;

  const key = (kind: string, nodeId: string) => `${kind}\0${nodeId}`;
  const parse = (k: string): [string, string] => k.split("\0") as [string, string];

  function put(m: AppMember): void {
    pools.get(m.kind)!.set(m.nodeId, m);
    let ks = kindsOf.get(m.nodeId);
    if (!ks) kindsOf.set(m.nodeId, (ks = new Set()));
    ks.add(m.kind);
    let cs = byConn.get(m.connectionId);
    if (!cs) byConn.set(m.connectionId, (cs = new Set()));
    cs.add(key(m.kind, m.nodeId));
  }

  function unindexConnection(m: AppMember): void {
    const cs = byConn.get(m.connectionId);
    if (!cs) return;
    cs.delete(key(m.kind, m.nodeId));
    if (cs.size === 0) byConn.delete(m.connectionId);
  }

  function drop(m: AppMember): void {
    const pool = pools.get(m.kind);
    if (!pool || pool.get(m.nodeId) !== m) return;
    pool.delete(m.nodeId);
    size--;
    const ks = kindsOf.get(m.nodeId);
    if (ks) {
      ks.delete(m.kind);
      if (ks.size === 0) kindsOf.delete(m.nodeId);
    }
    unindexConnection(m);
  }

  /** Replaces a stored member object (members are immutable snapshots). */
  function replace(old: AppMember, next: AppMember): void {
    if (old.connectionId !== next.connectionId) unindexConnection(old);
    put(next);
  }

  return {
    capacity,
    get size() {
      return size;
    },
    serves: (kind) => pools.has(kind),

    join(input, now) {
      const pool = pools.get(input.kind);
      if (!pool) {
        const served = [...pools.keys()].sort();
        return {
          status: "kind-not-served",
          kind: input.kind,
          message: `kind ${JSON.stringify(input.kind)} is not served by this node (served: ${served.length ? served.join(", ") : "none"})`,
        };
      }
      const previous = pool.get(input.nodeId);
      if (previous) {
        const member: AppMember = {
          ...input,
          address: { ip: normalizeIp(input.address.ip), port: input.address.port },
          portDelta: input.portDelta ?? null,
          joinedAt: previous.joinedAt,
          lastSeen: now,
        };
        replace(previous, member);
        return {
          status: "rejoined",
          member,
          previous,
          addressChanged: !sameAddress(previous.address, member.address),
          connectionChanged: previous.connectionId !== member.connectionId,
        };
      }
      const held = byConn.get(input.connectionId)?.size ?? 0;
      if (held >= maxPerConnection) {
        return {
          status: "over-share",
          kind: input.kind,
          message: `this connection already holds ${held} memberships (at most ${maxPerConnection})`,
        };
      }
      const prefix = prefixKey(input.address.ip);
      let fromPrefix = 0;
      for (const m of pool.values()) if (prefixKey(m.address.ip) === prefix) fromPrefix++;
      if (fromPrefix >= maxPerPrefix) {
        return {
          status: "over-share",
          kind: input.kind,
          message: `app pool for kind ${JSON.stringify(input.kind)} already holds ${fromPrefix} members from ${prefix} (at most ${maxPerPrefix})`,
        };
      }
      if (pool.size >= capacity) {
        return {
          status: "full",
          kind: input.kind,
          capacity,
          message: `app pool for kind ${JSON.stringify(input.kind)} is full (${capacity} members); try another node`,
        };
      }
      const member: AppMember = {
        ...input,
        address: { ip: normalizeIp(input.address.ip), port: input.address.port },
        portDelta: input.portDelta ?? null,
        joinedAt: now,
        lastSeen: now,
      };
      put(member);
      size++;
      return { status: "joined", member };
    },

    leave(connectionId) {
      const removed: AppMember[] = [];
      for (const k of [...(byConn.get(connectionId) ?? [])]) {
        const [kind, nodeId] = parse(k);
        const m = pools.get(kind)?.get(nodeId);
        if (m) {
          drop(m);
          removed.push(m);
        }
      }
      byConn.delete(connectionId);
      return removed;
    },

    remove(nodeId, kind) {
      const kinds = kind === undefined ? [...(kindsOf.get(nodeId) ?? [])] : [kind];
      const removed: AppMember[] = [];
      for (const k of kinds) {
        const m = pools.get(k)?.get(nodeId);
        if (m) {
          drop(m);
          removed.push(m);
        }
      }
      return removed;
    },

    get: (kind, nodeId) => pools.get(kind)?.get(nodeId),

    byId(nodeId, kind) {
      if (kind !== undefined) return pools.get(kind)?.get(nodeId);
      let best: AppMember | undefined;
      for (const k of kindsOf.get(nodeId) ?? []) {
        const m = pools.get(k)!.get(nodeId)!;
        if (!best || m.lastSeen > best.lastSeen) best = m;
      }
      return best;
    },

    members: (kind) => [...(pools.get(kind)?.values() ?? [])],

    byConnection(connectionId) {
      const out: AppMember[] = [];
      for (const k of byConn.get(connectionId) ?? []) {
        const [kind, nodeId] = parse(k);
        const m = pools.get(kind)?.get(nodeId);
        if (m) out.push(m);
      }
      return out;
    },

    seen(connectionId, now) {
      let n = 0;
      for (const k of byConn.get(connectionId) ?? []) {
        const [kind, nodeId] = parse(k);
        const m = pools.get(kind)?.get(nodeId);
        if (!m) continue;
        if (now > m.lastSeen) put({ ...m, lastSeen: now });
        n++;
      }
      return n;
    },

    updateAddress(nodeId, address, now) {
      let changed = false;
      for (const k of kindsOf.get(nodeId) ?? []) {
        const m = pools.get(k)!.get(nodeId)!;
        const next = { ip: normalizeIp(address.ip), port: address.port };
        if (!sameAddress(m.address, next)) changed = true;
        put({ ...m, address: next, lastSeen: Math.max(m.lastSeen, now) });
      }
      return changed;
    },

    expire(now, idleMs) {
      const removed: AppMember[] = [];
      for (const pool of pools.values()) {
        for (const m of [...pool.values()]) {
          if (now - m.lastSeen > idleMs) {
            drop(m);
            removed.push(m);
          }
        }
      }
      return removed;
    },

    counts() {
      const out: Record<string, number> = {};
      for (const [kind, pool] of [...pools].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) out[kind] = pool.size;
      return out;
    },
  };
}
