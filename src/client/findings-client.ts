// FindingsClient: what an app needs from a Findings network, in one object (DESIGN §1, §5–§8): its NAT report,
// the nodes that serve a kind, membership in an app pool with punched peer connections, and the registry of
// public TCP servers. Every wait takes an AbortSignal; errors are the project's typed errors (src/errors.ts).
import { isIP } from "node:net";
import { PeerError } from "../errors.ts";
import { createRunCertificate, generateNodeKey, loadOrCreateNodeKey, type NodeKey, type RunCertificate } from "../identity/index.ts";
import { runProbe, type NatClassName, type ProbeOptions, type ProbeServer } from "../nat/index.ts";
import { askFind, toJson } from "../mesh/index.ts";
import { shareFetch, shareRegister } from "../share/index.ts";
import { bootstrapApp, createUdpClient, type QuicLink } from "../transport/index.ts";
import { formatAddress, parseAddress, type Logger } from "../contracts/index.ts";
import { joinPool, type Membership } from "./membership.ts";
import type { PeerConnection } from "./connection.ts";

export interface FindingsClientOptions {
  /** A Findings node: "ip:port#<node key hex>" as `findings id` prints it (the key pins every link). Without
   *  the key only probe() and find() work (first contact, unpinned). */
  server: string;
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
  private cert: RunCertificate | undefined;
  private nat: NatClassName | null | undefined;
  private readonly pools = new Map<string, Promise<Membership>>();

  constructor(private readonly opts: FindingsClientOptions) {
    const s = parseAddress(opts.server, "server");
    this.server = { ip: s.ip, port: s.port, publicKey: s.publicKey };
    this.key = opts.home ? loadOrCreateNodeKey(opts.home) : generateNodeKey();
    this.id = this.key.nodeId;
    this.nat = opts.nat;
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
      this.withNode(opts.signal, async (link, signal) => {
        const a = await shareRegister(link, { kind, port }, { signal });
        return formatAddress(a.ip, a.port);
      }),
    /** Up to `max` (≤ 6) listed servers of `kind`, "ip:port" each, with when the node last verified them. */
    fetch: (kind: string, opts: { max?: number; signal?: AbortSignal } = {}): Promise<{ address: string; verifiedAt: Date }[]> =>
      this.withNode(opts.signal, async (link, signal) => (await shareFetch(link, kind, { max: opts.max, signal })).map((e) => ({ address: formatAddress(e.ip, e.port), verifiedAt: new Date(e.verifiedAtMs) }))),
  };

  /** Leaves every pool and closes every connection and socket. */
  async close(): Promise<void> {
    const pools = [...this.pools.values()];
    this.pools.clear();
    await Promise.allSettled(pools.map(async (p) => (await p).leave()));
  }

  /** The server with its key, for what must be pinned (pools, the share registry). */
  private pinned(): { ip: string; port: number; publicKey: Uint8Array } {
    const { ip, port, publicKey } = this.server;
    if (!publicKey) throw new PeerError(`Cannot join or register at ${formatAddress(ip, port)}: the node key is needed to pin the link (server "ip:port#<64 hex key>")`);
    return { ip, port, publicKey };
  }

  private async startPool(kind: string, opts: JoinOptions): Promise<Membership> {
    const server = this.pinned();
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
    });
  }

  private async withNode<T>(signal: AbortSignal | undefined, fn: (link: QuicLink, signal: AbortSignal) => Promise<T>): Promise<T> {
    const server = this.pinned();
    const sig = signal ?? AbortSignal.timeout(10_000);
    const udp = createUdpClient({ log: this.opts.log }, { host: this.opts.host ?? (isIP(this.server.ip) === 6 ? "::" : "0.0.0.0") });
    await udp.start();
    try {
      const { link } = await bootstrapApp(udp, { addr: server, nodePublicKey: server.publicKey }, { appKey: this.key, signal: sig });
      return await fn(link, sig);
    } finally {
      await udp.stop();
    }
  }
}
