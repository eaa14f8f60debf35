// FindingsClient: what an app needs from a Findings network, in one object (DESIGN §1, §5–§8): its NAT report,
// the nodes that serve a kind, membership in an app pool with punched peer connections, and the registry of
// public TCP servers. Every wait takes an AbortSignal; errors are the project's typed errors (src/errors.ts).
import { isIP } from "node:net";
import { bytesToHex } from "@noble/hashes/utils.js";
import { PeerError } from "../errors.ts";
import { createRunCertificate, generateNodeKey, loadOrCreateNodeKey, type NodeKey, type RunCertificate } from "../identity/index.ts";
import { runProbe, type NatClassName, type ProbeOptions, type ProbeServer } from "../nat/index.ts";
import { askFind, MAX_SEARCH_HOPS, toJson } from "../mesh/index.ts";
import { shareFetch, shareRegister } from "../share/index.ts";
import { bootstrapApp, createUdpClient, wssAppDialer, type BootstrapDialer, type BootstrapLink, type NodeGreeting } from "../transport/index.ts";
import { METHOD } from "../rpc/index.ts";
import { expectOk } from "../transport/index.ts";
import { decodeMessage, WhoamiResponseSchema } from "../wire/index.ts";
import { knownHostsFile, openKnownHosts, type KnownHosts } from "./known-hosts.ts";
import { createKeyResolver, knownHostName, type KeySource, type ResolvedKey } from "./node-key.ts";
import { formatAddress, parseAddress, type Logger } from "../contracts/index.ts";
import { joinPool, type Membership } from "./membership.ts";
import type { PeerConnection } from "./connection.ts";

export interface FindingsClientOptions {
  /** A Findings node: "ip:port", or "ip:port#<node key hex>" as `findings id` prints it to pin the key by
   *  hand. Without the key it is taken from the known-hosts file, else learned from the network on first use
   *  (the node's signed record and a sealed key check) and remembered. */
  server: string;
  /** Known-hosts file (keys learned on first use; a later change of key is refused). false: memory only.
   *  @default `<home>/known_hosts.json` with `home`, else memory only */
  knownHosts?: string | false;
  /** Nodes already trusted ("ip:port#key") to ask for the node's record before asking the node itself. */
  trusted?: string[];
  /** Learn an unknown key from the network. @default true */
  learnKeys?: boolean;
  /** "wss": whoami(), nodeInfo() and the share registry go over WSS to the node's TLS port (apps without UDP);
   *  then `server`'s port is that port. Pools, punches, probes and find need QUIC. @default "quic" */
  transport?: "quic" | "wss";
  /** Folder holding this app's identity key (`node.key`, created on first use); peers punch us by its id.
   *  @default a fresh key for each client */
  home?: string;
  /** Our NAT class when known (`findings probe`); null: unknown, do not probe (then only Public/FullC peers
   *  can be punched). @default probed at the first join */
  nat?: NatClassName | null;
  /** Local address for the sockets. @default "0.0.0.0" (IPv4 node) or "::" */
  host?: string;
  log?: Logger;
}

/** Nodes that serve a kind, as `findings find --json` prints them. */
export interface FindAnswer {
  kind: string;
  nodes: ReturnType<typeof toJson>[];
  groups: { stakeAddress: string; members: { nodeId: string; identityId: string }[] }[];
}

export type NatReport = Awaited<ReturnType<typeof runProbe>>;

/** A listed TCP server of a kind (`client.share.fetch`). */
export interface FoundServer {
  /** "ip:port" of the TCP server. */
  address: string;
  /** When the node that lists it last verified it by a TCP dial-back. */
  verifiedAt: Date;
  /** The node that lists it. */
  nodeId: string;
}

/** The node as the client knows it after a bootstrap: its key and how it was trusted, and what it named in its
 *  sealed bootstrap answer (its reward address for the kind, its identity id). */
export interface NodeInfo {
  address: string;
  nodeId: string;
  /** X25519 key, hex. */
  key: string;
  keySource: KeySource;
  /** With "learned": who gave the record ("ip:port"). */
  recordFrom?: string;
  kind: string;
  stakeAddress: string;
  stakeSource: string;
  identityId: string;
}

export interface JoinOptions {
  /** Each peer connection as it comes up (punched in or out): attach `onStream` here. */
  onPeer?: (conn: PeerConnection) => void;
  /** Local UDP port of this membership's socket. @default any */
  port?: number;
  signal?: AbortSignal;
}

export class FindingsClient {
  /** Our node id (hex SHA-256 of the X25519 public key). */
  readonly id: string;
  private readonly server: { ip: string; port: number; publicKey?: Uint8Array };
  private readonly key: NodeKey;
  /** The known-hosts store of this client. */
  readonly knownHosts: KnownHosts;
  private readonly resolveKey: (opts?: { signal?: AbortSignal }) => Promise<ResolvedKey>;
  private latest: NodeInfo | undefined;
  private cert: RunCertificate | undefined;
  private nat: NatClassName | null | undefined;
  private readonly pools = new Map<string, Promise<Membership>>();

  constructor(private readonly opts: FindingsClientOptions) {
    const s = parseAddress(opts.server, "server");
    this.server = { ip: s.ip, port: s.port, publicKey: s.publicKey };
    this.key = opts.home ? loadOrCreateNodeKey(opts.home) : generateNodeKey();
    this.id = this.key.nodeId;
    this.nat = opts.nat;
    const file = opts.knownHosts === false ? undefined : (opts.knownHosts ?? (opts.home ? knownHostsFile(opts.home) : undefined));
    this.knownHosts = openKnownHosts(file);
    this.resolveKey = createKeyResolver({ server: this.server, knownHosts: this.knownHosts, trusted: opts.trusted, transport: opts.transport, learn: opts.learnKeys });
  }

  /** The node as of the latest bootstrap (undefined before any). */
  get node(): NodeInfo | undefined {
    return this.latest;
  }

  /** The node's key (pinned, known or learned now) and its bootstrap answer for `kind` (its reward address for
   *  the kind, else the general one, and its identity id), over one pinned link. */
  async nodeInfo(opts: { kind?: string; signal?: AbortSignal } = {}): Promise<NodeInfo> {
    return this.withNode(opts.signal, async (_link, _signal, node) => node, opts.kind);
  }

  /** Our public address as the node sees it, over a pinned link (`findings whoami`), and the node. */
  async whoami(opts: { signal?: AbortSignal } = {}): Promise<{ address: string; rttMs: number; node: NodeInfo }> {
    return this.withNode(opts.signal, async (link, signal, node) => {
      const t0 = performance.now();
      const answer = await link.request(METHOD.app.whoami, undefined, { signal });
      const rttMs = performance.now() - t0;
      const me = decodeMessage(WhoamiResponseSchema, expectOk(answer), "WhoamiResponse");
      return { address: formatAddress(me.ip, me.port), rttMs, node };
    });
  }

  /** Our public address and NAT class (`findings probe`). With one server the class may come out stricter
   *  than the truth; pass more servers when you have them. */
  async probe(opts: { servers?: string[]; lifetime?: boolean; timeoutMs?: number; onProgress?: ProbeOptions["onProgress"]; signal?: AbortSignal } = {}): Promise<NatReport> {
    const servers: ProbeServer[] = opts.servers?.length ? opts.servers.map((t) => parseAddress(t, "server")) : [this.server];
    const report = await runProbe({ servers, lifetime: opts.lifetime, timeoutMs: opts.timeoutMs, onProgress: opts.onProgress, signal: opts.signal, log: this.opts.log });
    if (report.nat) this.nat = report.nat;
    return report;
  }

  /** Nodes that serve `kind`, from the node and its mesh, with server groups (`findings find`). */
  async find(kind: string, opts: { hops?: number; timeoutMs?: number; signal?: AbortSignal } = {}): Promise<FindAnswer> {
    const r = await askFind(this.server, kind, { hops: opts.hops, timeoutMs: opts.timeoutMs, signal: opts.signal });
    return {
      kind,
      nodes: r.records.map(toJson),
      groups: r.groups.map((g) => ({ stakeAddress: g.stakeAddress, members: g.members.map((m) => ({ nodeId: m.nodeId, identityId: m.identityId })) })),
    };
  }

  /** Joins the node's app pool for `kind` (once per kind; later calls return the same membership). Peers
   *  that punch us arrive through `onPeer` and the membership's "peer" event. */
  join(kind: string, opts: JoinOptions = {}): Promise<Membership> {
    let p = this.pools.get(kind);
    if (!p) {
      p = this.startPool(kind, opts);
      this.pools.set(kind, p);
      p.catch(() => this.pools.delete(kind));
    } else if (opts.onPeer) {
      const onPeer = opts.onPeer;
      void p.then((m) => m.on("peer", onPeer)).catch(() => {});
    }
    return p;
  }

  /** A connection to the app with node id `peerId` in the pool of `kind` (joined first if needed). */
  async punch(peerId: string, opts: { kind: string; signal?: AbortSignal }): Promise<PeerConnection> {
    return (await this.join(opts.kind, { signal: opts.signal })).punch(peerId, { signal: opts.signal });
  }

  /** A connection to a random compatible member of `kind` (the first that connected). */
  async punchRandom(kind: string, opts: { signal?: AbortSignal } = {}): Promise<PeerConnection> {
    const conns = await (await this.join(kind, { signal: opts.signal })).punchRandom({ max: 1, signal: opts.signal });
    return conns[0]!;
  }

  /** The registry of public TCP servers (`findings share`). */
  readonly share = {
    /** Lists our TCP server (our public IP as the node sees it, `port`) for `kind`; resolves after the node
     *  dialled it back. Returns the listed address. */
    register: (kind: string, port: number, opts: { signal?: AbortSignal } = {}): Promise<string> =>
      this.withNode(
        opts.signal,
        async (link, signal) => {
          const a = await shareRegister(link, { kind, port }, { signal });
          return formatAddress(a.ip, a.port);
        },
        kind,
      ),
    /** Up to `max` (≤ 6) listed servers of `kind`, "ip:port" each, with when they were last verified and the
     *  node that lists them. With `search`, the node also searches the mesh (`hops`, default 3) when it has fewer
     *  of its own: each such entry comes signed from the node that lists it and was dialled by our node. */
    fetch: (kind: string, opts: { max?: number; search?: boolean; hops?: number; signal?: AbortSignal } = {}): Promise<FoundServer[]> =>
      this.withNode(
        opts.signal,
        async (link, signal, node) =>
          (await shareFetch(link, kind, { max: opts.max, hops: opts.search ? (opts.hops ?? MAX_SEARCH_HOPS) : 0, signal })).map((e) => ({
            address: formatAddress(e.ip, e.port),
            verifiedAt: new Date(e.verifiedAtMs),
            nodeId: e.nodeId || node.nodeId,
          })),
        kind,
      ),
  };

  /** Leaves every pool and closes every connection and socket. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map(async (p) => (await p).leave()));
  }

  /** The server with its key (pinned, known or learned), for what must be pinned (pools, the registry). */
  private async pinned(signal?: AbortSignal): Promise<{ ip: string; port: number; publicKey: Uint8Array; resolved: ResolvedKey }> {
    const resolved = await this.resolveKey({ signal });
    return { ip: this.server.ip, port: this.server.port, publicKey: resolved.publicKey, resolved };
  }

  /** The node's key and how it was trusted: pinned by hand, known from an earlier session, or learned now. */
  async nodeKey(opts: { signal?: AbortSignal } = {}): Promise<ResolvedKey> {
    return this.resolveKey(opts);
  }

  /** The node as a membership's join answer names it (its reward address for the kind, its identity id). */
  async joinedNode(m: Membership): Promise<NodeInfo> {
    const key = await this.resolveKey();
    const j = m.joined;
    return { address: formatAddress(this.server.ip, this.server.port), nodeId: key.nodeId, key: bytesToHex(key.publicKey), keySource: key.keySource, ...(key.recordFrom ? { recordFrom: key.recordFrom } : {}), kind: j.kind, stakeAddress: j.stakeAddress, stakeSource: j.stakeSource, identityId: j.identityId };
  }

  private async startPool(kind: string, opts: JoinOptions): Promise<Membership> {
    const server = await this.pinned(opts.signal);
    if (this.nat === undefined) {
      const report = await this.probe({ signal: opts.signal }).catch(() => null);
      this.nat = report?.nat ?? null;
    }
    this.cert ??= await createRunCertificate();
    return joinPool({
      key: this.key,
      cert: this.cert,
      log: this.opts.log,
      server,
      kind,
      nat: this.nat,
      host: this.opts.host,
      port: opts.port,
      onPeer: opts.onPeer,
      signal: opts.signal,
    }).catch((err: unknown) => {
      throw this.explainKnown(err, server);
    });
  }

  /** A bootstrap failure with a key remembered from an earlier session that the node no longer proves:
   *  refused, loudly, saying how to forget it. Other errors pass unchanged. */
  private explainKnown(err: unknown, server: { ip: string; port: number; publicKey: Uint8Array; resolved: ResolvedKey }): unknown {
    if (server.resolved.keySource !== "known" || !(err instanceof PeerError) || !/could not open our hello|not sealed by the node key/.test(err.message)) return err;
    const name = knownHostName(server, this.opts.transport);
    return new PeerError(
      `The node at ${name} no longer proves the key known for it (${bytesToHex(server.publicKey).slice(0, 16)}…, in ${this.knownHosts.file ?? "memory"}): refused. ` +
        `Someone may be in the way, or the node got a new key; if you trust it: findings known-hosts --forget ${name}`,
      { cause: err },
    );
  }

  private async withNode<T>(signal: AbortSignal | undefined, fn: (link: BootstrapLink, signal: AbortSignal, node: NodeInfo) => Promise<T>, kind = ""): Promise<T> {
    const sig = signal ?? AbortSignal.timeout(10_000);
    const server = await this.pinned(sig);
    const infoOf = (g: NodeGreeting): NodeInfo => {
      const r = server.resolved;
      this.latest = { address: formatAddress(server.ip, server.port), nodeId: g.nodeId, key: bytesToHex(server.publicKey), keySource: r.keySource, ...(r.recordFrom ? { recordFrom: r.recordFrom } : {}), kind: g.kind, stakeAddress: g.stakeAddress, stakeSource: g.stakeSource, identityId: g.identityId };
      return this.latest;
    };
    const boot = <L extends BootstrapLink>(dialer: BootstrapDialer<L>) =>
      bootstrapApp(dialer, { addr: server, nodePublicKey: server.publicKey }, { appKey: this.key, kind, signal: sig }).catch((err: unknown) => {
        throw this.explainKnown(err, server);
      });
    if (this.opts.transport === "wss") {
      const { link, node } = await boot(wssAppDialer({ log: this.opts.log }));
      try {
        return await fn(link, sig, infoOf(node));
      } finally {
        link.close();
      }
    }
    const udp = createUdpClient({ log: this.opts.log }, { host: this.opts.host ?? (isIP(this.server.ip) === 6 ? "::" : "0.0.0.0") });
    await udp.start();
    try {
      const { link, node } = await boot(udp);
      return await fn(link, sig, infoOf(node));
    } finally {
      await udp.stop();
    }
  }
}
