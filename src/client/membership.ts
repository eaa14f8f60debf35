// Membership in one node's app pool for one kind (seed 000 §应用池): the punch client underneath, its punched
// links as PeerConnections, and what happens inside (re-joins after the node link drops, re-offers after a
// peer's mapping changed) surfaced as events.
import { PeerError, errorLine } from "../errors.ts";
import { createPunchClient, type AddressChange, type JoinInfo, type PunchClient, type PunchResult } from "../punch/index.ts";
import type { NatClassName } from "../nat/index.ts";
import type { NodeKey, RunCertificate } from "../identity/index.ts";
import { raceSignal } from "../transport/index.ts";
import type { Logger } from "../contracts/index.ts";
import { createConnection, type ConnectionCore, type PeerConnection } from "./connection.ts";

/** A punch ran and no link came up; `results` holds every attempt (why each failed). */
export class PunchFailedError extends PeerError {
  readonly results: PunchResult[];
  constructor(message: string, results: PunchResult[]) {
    super(message);
    this.name = "PunchFailedError";
    this.results = results;
  }
}

export interface MembershipEvents {
  /** A punched link is up (we punched, a peer punched us, or a re-offer replaced an older link). */
  peer: PeerConnection;
  /** The node link dropped and the client bootstrapped and joined again (maybe from a new address). */
  rejoin: JoinInfo;
  /** Every finished punch attempt, connected or not. */
  result: PunchResult;
  /** Our NAT re-mapped the live link to the node: our public address changed (`joined.address` follows);
   *  the node re-offers our recent peers, whose links come back as "peer" events. */
  address: AddressChange;
}

export interface Membership {
  readonly kind: string;
  /** Our node id: peers punch us by it. */
  readonly id: string;
  /** The latest join: our public address as the node sees it, the node's stake address for the kind. */
  readonly joined: JoinInfo;
  /** Local UDP port of the membership's socket. */
  readonly port: number;
  /** Punches the peer with this node id (it must be in the pool of `targetKind`, default our kind). Throws
   *  PunchRefusedError (the node refused: not found, incompatible NATs), PunchFailedError (no link came up). */
  punch(peerId: string, opts?: { targetKind?: string; signal?: AbortSignal }): Promise<PeerConnection>;
  /** Punches up to `max` random compatible members; resolves with the ones that connected (at least one). */
  punchRandom(opts?: { max?: number; targetKind?: string; signal?: AbortSignal }): Promise<PeerConnection[]>;
  /** The raw form of punch/punchRandom for tools: every attempt's result, connected or not (the connections
   *  that came up are then `connection(id)`). `peerId` null: random members (up to `max`). */
  attempt(peerId: string | null, opts?: { max?: number; targetKind?: string; signal?: AbortSignal }): Promise<PunchResult[]>;
  /** The live connection to a peer, if any. */
  connection(peerId: string): PeerConnection | undefined;
  connections(): PeerConnection[];
  /** Resolves with the next connection to `peerId` (any peer when omitted), or the live one. */
  waitForPeer(peerId?: string, opts?: { signal?: AbortSignal }): Promise<PeerConnection>;
  on<E extends keyof MembershipEvents>(event: E, fn: (value: MembershipEvents[E]) => void): () => void;
  /** Says goodbye to the node, closes every connection and the socket (idempotent). */
  leave(): Promise<void>;
}

export interface MembershipInit {
  key: NodeKey;
  cert?: RunCertificate;
  log?: Logger;
  server: { ip: string; port: number; publicKey: Uint8Array };
  kind: string;
  nat: NatClassName | null;
  host?: string;
  port?: number;
  onPeer?: (conn: PeerConnection) => void;
  signal?: AbortSignal;
}

export async function joinPool(init: MembershipInit): Promise<Membership> {
  const byLink = new Map<string, ConnectionCore>();
  const byPeer = new Map<string, ConnectionCore>();
  const listeners: { [E in keyof MembershipEvents]: Set<(v: MembershipEvents[E]) => void> } = { peer: new Set(), rejoin: new Set(), result: new Set(), address: new Set() };
  let joined: JoinInfo | undefined;
  /** Connections made by our own punch(), by attempt id, so punch() can return them. */
  const byAttempt = new Map<string, ConnectionCore>();

  function emit<E extends keyof MembershipEvents>(event: E, value: MembershipEvents[E]): void {
    for (const fn of listeners[event]) {
      try {
        (fn as (v: MembershipEvents[E]) => void)(value);
      } catch (err) {
        init.log?.error(`membership ${event} listener failed`, { error: errorLine(err) });
      }
    }
  }

  const client: PunchClient = createPunchClient(
    { key: init.key, cert: init.cert, log: init.log },
    {
      server: init.server,
      kind: init.kind,
      nat: init.nat,
      host: init.host,
      port: init.port,
      onResult(result, link) {
        if (result.connected && link && result.peerId) {
          const conn = createConnection(link, init.kind, result);
          byLink.set(link.connectionId, conn);
          byPeer.set(result.peerId, conn);
          if (result.attemptId) byAttempt.set(result.attemptId, conn);
          try {
            init.onPeer?.(conn);
          } catch (err) {
            init.log?.error("onPeer callback failed", { error: errorLine(err) });
          }
          emit("peer", conn);
        }
        emit("result", result);
      },
      onJoin(info) {
        const again = joined !== undefined;
        joined = info;
        if (again) emit("rejoin", info);
      },
      onAddress(change) {
        if (joined) joined = { ...joined, address: change.address, addressChanged: true };
        emit("address", change);
      },
      onStream(stream, _peerId, link) {
        const conn = byLink.get(link.connectionId);
        if (conn) conn.deliver(stream);
        else stream.reset();
      },
      onPeerClose(peerId, link) {
        const conn = byLink.get(link.connectionId);
        byLink.delete(link.connectionId);
        if (conn && byPeer.get(peerId) === conn) byPeer.delete(peerId);
        if (conn?.result.attemptId) byAttempt.delete(conn.result.attemptId);
        conn?.markClosed();
      },
    },
  );

  joined = await client.start({ signal: init.signal });

  function connectionsOf(results: PunchResult[]): ConnectionCore[] {
    const out: ConnectionCore[] = [];
    for (const r of results) {
      const c = r.attemptId ? byAttempt.get(r.attemptId) : undefined;
      if (r.attemptId) byAttempt.delete(r.attemptId);
      if (c && !c.closed) out.push(c);
    }
    return out;
  }

  const membership: Membership = {
    kind: init.kind,
    id: client.nodeId,
    get joined() {
      return joined!;
    },
    get port() {
      return client.port;
    },
    async punch(peerId, opts = {}) {
      const results = await client.punch(peerId, { targetKind: opts.targetKind, signal: opts.signal });
      const conn = connectionsOf(results)[0];
      if (conn) return conn;
      const why = results.map((r) => r.reason).filter(Boolean).join("; ") || "no attempt connected";
      throw new PunchFailedError(`Cannot punch ${peerId.slice(0, 16)}: ${why}`, results);
    },
    async punchRandom(opts = {}) {
      const results = await client.punch(null, opts);
      const conns = connectionsOf(results);
      if (conns.length) return conns;
      const why = results.map((r) => r.reason).filter(Boolean).join("; ") || "the node offered no peer";
      throw new PunchFailedError(`Cannot punch a random member of ${opts.targetKind ?? init.kind}: ${why}`, results);
    },
    async attempt(peerId, opts = {}) {
      const results = await client.punch(peerId, opts);
      for (const r of results) if (r.attemptId) byAttempt.delete(r.attemptId);
      return results;
    },
    connection(peerId) {
      const c = byPeer.get(peerId);
      return c && !c.closed ? c : undefined;
    },
    connections: () => [...byPeer.values()].filter((c) => !c.closed),
    waitForPeer(peerId, opts = {}) {
      const live = peerId ? membership.connection(peerId) : undefined;
      if (live) return Promise.resolve(live);
      let off = () => {};
      const next = new Promise<PeerConnection>((resolve) => {
        off = membership.on("peer", (c) => {
          if (peerId === undefined || c.peerId === peerId) resolve(c);
        });
      });
      const p = opts.signal ? raceSignal(next, opts.signal) : next;
      return p.finally(off);
    },
    on(event, fn) {
      const set = listeners[event] as Set<typeof fn>;
      set.add(fn);
      return () => set.delete(fn);
    },
    async leave() {
      await client.stop();
      for (const c of byLink.values()) c.markClosed();
      byLink.clear();
      byPeer.clear();
    },
  };
  return membership;
}
