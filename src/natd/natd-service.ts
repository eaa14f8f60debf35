// Findings nodes behind NAT (seed 001 §组网节点, §应用池: "位于NAT之后的Findings节点也可以以findings类型应用来连入
// 公网节点，获得与其它同样位于NAT之后的Findings节点间的打洞服务"). A node whose self-check failed (mesh role
// "client": nobody can dial it) joins a public node's app pool of kind "findings:<network>" as an app, with its
// own node key (so its member id is its node id) and its own NAT class, and asks that pool for random punches
// until it holds `links` direct links to other NAT'd nodes. On each punched link, and on the link to the public
// node, the two sides exchange what public nodes they know (node-link.hello); every record goes through the
// mesh's checks (signature, age, key check at its address, bans for liars: MeshService.learn), so a NAT'd peer
// can neither slip a forged record in nor stay after lying. A NAT'd peer's own identity is the key it proved to
// the public node in the app bootstrap: the punched link is pinned to the listener's certificate and the dialer
// proved its token, both handed out by that node.
//
// NewHost help (seed 001 §组网池): a member takes node-link.new-host only from its pool node, on its link to it, and
// sends one probe from the membership's socket (nat/newhost-member.ts has the rules). The public side keeps its
// members' links (addMember) for its NAT service, which asks them first.
import { isIP } from "node:net";
import { METHOD } from "../rpc/index.ts";
import type { Logger } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import { nodeIdOf, type NodeKey } from "../identity/index.ts";
import { createMemberNewHost, MAX_NEWHOST_ORDER_BYTES, type NatClassName, type NatdMemberLink } from "../nat/index.ts";
import { createPunchClient, type PunchClient, type PunchResult } from "../punch/index.ts";
import { ANY_TRUST, perHost, type RpcContext, type RpcReply } from "../rpc/index.ts";
import type { QuicLink } from "../transport/index.ts";
import { decodeMessage, encodeMessage, Status, NodeLinkHelloSchema, type NodeRecord } from "../wire/index.ts";
import { natdKind, NODE_LINK_HELLO_MAX_BYTES, pickPoolNode, type NatdMesh } from "./natd-parts.ts";

export { natdKind, withNetworkKind } from "./natd-parts.ts";

/** How often the service looks at its role, membership and links, in ms. */
const NATD_TICK_MS = 2_000;
/** Shortest time between two random punches asked of the pool node, in ms. */
const NATD_PUNCH_INTERVAL_MS = 5_000;
/** Empty punch rounds in one pool before moving to another. */
const EMPTY_ROUNDS_BEFORE_MOVE = 6;
/** Wait before each retry of a refused hello, in ms, and how many retries. */
const HELLO_RETRY_MS = 500;
const HELLO_RETRIES = 3;
/** Per node-link.hello request, in ms. */
const NODE_LINK_HELLO_TIMEOUT_MS = 5_000;

export interface NatdServiceComponents {
  nodeKey: NodeKey;
  mesh: NatdMesh;
  /** The node's own NAT class (its self-probe); the service joins only once it is known. */
  ownNat(): NatClassName | null;
  log?: Logger;
}

export interface NatdServiceInit {
  /** Config `network`. */
  network: string;
  /** Config `natd_links`: direct links to keep; 0 = off. */
  links: number;
  /** Records given per hello (config `mesh_share`). */
  shareCount: number;
  /** Local address for the membership's socket (config `host`). */
  host: string;
  /** IPs of the configured peers (config `peers`): a pool node there is joined first. */
  preferIps?: readonly string[];
  /** @default NATD_TICK_MS */
  tickMs?: number;
  /** NewHost help to special-range targets (config allow_special_targets). @default allow_special_targets of defaults.toml */
  allowSpecialTargets?: boolean;
  /** Proof-of-work bits asked of NewHost targets (tests lower it). @default NEWHOST_POW_BITS */
  powBits?: number;
}

export interface NatdPeerStatus {
  id: string;
  address: string;
  rttMs: number | null;
  since: number;
}

export interface NatdStatus {
  kind: string;
  /** The public node whose pool we joined ("ip:port"), or null. */
  joined: string | null;
  /** Our public address as that node sees it. */
  address: string | null;
  nat: NatClassName | null;
  peers: NatdPeerStatus[];
}

export interface NatdService {
  start(): Promise<void>;
  stop(): Promise<void>;
  status(): NatdStatus;
  counters(): Record<string, number>;
  /** Public side: asks a NAT'd member of our findings pool for the public nodes it knows, on its kept link. */
  askMember(link: QuicLink, memberId: string): Promise<void>;
  /** Public side: keeps a NAT'd member's link (its bound key must be the member's id) as a NewHost helper. */
  addMember(link: QuicLink, memberId: string): void;
  /** Public side: the live member links, for the NAT service's NewHost fan-out. */
  members(): NatdMemberLink[];
}

/** Member links a public node keeps as NewHost helpers (a pool holds punch_xpool members of a kind). */
const MAX_HELPER_MEMBERS = 256;

export function createNatdService(components: NatdServiceComponents, init: NatdServiceInit): NatdService {
  const { mesh, log } = components;
  const kind = natdKind(init.network);
  const counters = { joins: 0, joinFailures: 0, punchRounds: 0, linked: 0, hellosSent: 0, hellosServed: 0, hellosRefused: 0, recordsLearned: 0 };
  const peers = new Map<string, { link: QuicLink; since: number }>();
  /** Every live punched link (connection id → peer id), also one a newer link to the same peer replaced: two
   *  nodes that punch each other at once get two links, and a hello may come on either. */
  const punched = new Map<string, string>();
  let client: PunchClient | undefined;
  let joinedAt: { ip: string; port: number; id: string; publicKey: Uint8Array } | undefined;
  let joining = false;
  let timer: ReturnType<typeof setInterval> | undefined;
  let lastPunch = 0;
  /** Punch rounds in a row that found no NAT'd node to link with: after EMPTY_ROUNDS_BEFORE_MOVE we try
   *  another pool (NAT'd nodes meet only in the same node's pool). */
  let emptyRounds = 0;
  /** Pool nodes tried since the last link came up (forgotten once every candidate was tried). */
  const triedPools = new Set<string>();
  let running = false;
  /** Public side: member id → its link to us. */
  const memberLinks = new Map<string, QuicLink>();
  /** Member side: NewHost orders from our pool node. */
  const newHost = createMemberNewHost(
    {
      nodeKey: components.nodeKey,
      poolNode: () => (joinedAt && client ? { publicKey: joinedAt.publicKey, ip: joinedAt.ip, port: joinedAt.port } : null),
      send: (bytes, to) => {
        const c = client;
        if (!c) return Promise.reject(new Error("not a member of a pool"));
        return c.endpoint.sendRaw(bytes, to.port, to.ip);
      },
      log,
    },
    { allowSpecialTargets: init.allowSpecialTargets, powBits: init.powBits },
  );

  function hello(): Uint8Array {
    return encodeMessage(NodeLinkHelloSchema, { network: init.network, records: mesh.shareable(init.shareCount) });
  }

  /** Reads a hello; null (and counted) when it is malformed or from another network. */
  function readHello(payload: Uint8Array): NodeRecord[] | null {
    try {
      const h = decodeMessage(NodeLinkHelloSchema, payload, "NodeLinkHello");
      if (h.network !== init.network) return null;
      return h.records;
    } catch {
      return null;
    }
  }

  async function learnFrom(records: readonly NodeRecord[], sharer: { id: string; ip: string }): Promise<void> {
    const n = await mesh.learn(records, { label: `natd ${sharer.id.slice(0, 16)}`, id: sharer.id, ip: sharer.ip });
    counters.recordsLearned += n;
    if (n) log?.info("learned public nodes from a NAT'd node", { from: sharer.id.slice(0, 16), added: n });
  }

  /** Both ways on a link that is not a mesh link: we send ours, the answer brings theirs. */
  async function exchange(link: QuicLink, peerId: string): Promise<void> {
    counters.hellosSent++;
    let answer = await link.request(METHOD.nodeLink.hello, hello(), { timeoutMs: NODE_LINK_HELLO_TIMEOUT_MS });
    // The listener may not have finished its side of the attempt yet: again, a moment later.
    for (let i = 0; i < HELLO_RETRIES && answer.status === Status.REFUSED && !link.closed; i++) {
      await new Promise((r) => setTimeout(r, HELLO_RETRY_MS));
      answer = await link.request(METHOD.nodeLink.hello, hello(), { timeoutMs: NODE_LINK_HELLO_TIMEOUT_MS });
    }
    if (answer.status !== Status.OK) throw new Error(`${METHOD.nodeLink.hello} answered ${answer.status}: ${answer.error}`);
    const records = readHello(answer.payload);
    if (records === null) throw new Error("the hello answer is malformed or from another network");
    await learnFrom(records, { id: peerId, ip: link.remote.ip });
  }

  function onResult(result: PunchResult, link: QuicLink | null): void {
    if (!result.connected || !link || !result.peerId) return;
    const peerId = result.peerId;
    if (mesh.isBanned(peerId) || mesh.isBanned(link.remote.ip)) {
      log?.info("closing a punched link to a banned node", { id: peerId.slice(0, 16) });
      void link.close();
      return;
    }
    peers.set(peerId, { link, since: Date.now() });
    punched.set(link.connectionId, peerId);
    counters.linked++;
    log?.info("direct link to a NAT'd node", { id: peerId.slice(0, 16), at: result.peer, strategy: result.strategy });
    // The dialer says hello; the listener answers (one exchange per link).
    if (result.role === "dial") void exchange(link, peerId).catch((err: unknown) => log?.debug("node-link hello failed", { id: peerId.slice(0, 16), error: errorLine(err) }));
  }

  /** node-link.hello on our membership's socket: from a punched NAT'd peer or from the pool node. */
  function onHello(payload: Uint8Array, ctx: RpcContext): RpcReply {
    // The punch client knows the link as soon as its side of the attempt finished (maybe before onResult ran).
    const fromPeer = punched.get(ctx.connectionId) ?? client?.peers().find((p) => p.link.connectionId === ctx.connectionId)?.peerId;
    const fromNode = joinedAt && ctx.remote.ip === joinedAt.ip && ctx.remote.port === joinedAt.port && ctx.trust !== "untrusted";
    const sharerId = fromPeer ?? (fromNode ? joinedAt!.id : null);
    const records = sharerId ? readHello(payload) : null;
    if (!sharerId || records === null) {
      counters.hellosRefused++;
      return { status: Status.REFUSED, error: sharerId ? "malformed hello or another network" : "node-link.hello only from a punched Findings node or the pool node" };
    }
    counters.hellosServed++;
    void learnFrom(records, { id: sharerId, ip: ctx.remote.ip }).catch((err: unknown) => log?.debug("learning from a hello failed", { error: errorLine(err) }));
    return { status: Status.OK, payload: hello() };
  }

  async function join(): Promise<void> {
    const nat = components.ownNat();
    const target = pickPoolNode(mesh.candidates(), { banned: (id) => mesh.isBanned(id), preferIps: triedPools.size ? [] : init.preferIps, avoid: triedPools });
    if (!nat || !target) return;
    const server = `${target.ip}:${target.port}`;
    const c = createPunchClient(
      { key: components.nodeKey, log },
      {
        server: { ip: target.ip, port: target.port, publicKey: target.publicKey },
        kind,
        nat,
        host: isIP(init.host) === 6 ? "::" : "0.0.0.0",
        onResult,
        onPeerClose: (peerId, link) => {
          punched.delete(link.connectionId);
          if (peers.get(peerId)?.link === link) peers.delete(peerId);
        },
      },
    );
    c.handle(METHOD.nodeLink.hello, onHello, { transports: ["quic"], trust: ANY_TRUST, rate: perHost(2, 10), maxInFlight: 8, maxPayloadBytes: NODE_LINK_HELLO_MAX_BYTES });
    // Only the pool node's orders count (newhost-member.ts checks the link); the policy only bounds the work.
    c.handle(METHOD.nodeLink.newHost, (p, ctx) => newHost.handle(p, ctx), { transports: ["quic"], trust: ANY_TRUST, rate: perHost(5, 20), maxInFlight: 4, maxPayloadBytes: MAX_NEWHOST_ORDER_BYTES });
    try {
      const j = await c.start();
      client = c;
      joinedAt = { ip: target.ip, port: target.port, id: target.id, publicKey: target.publicKey };
      counters.joins++;
      log?.info("joined a public node's pool as a NAT'd node", { node: server, kind, nat, address: j.address });
    } catch (err) {
      counters.joinFailures++;
      log?.info("cannot join a public node's findings pool", { node: server, error: errorLine(err) });
      await c.stop({ leave: false }).catch(() => {});
    }
  }

  async function leave(): Promise<void> {
    const c = client;
    client = undefined;
    joinedAt = undefined;
    peers.clear();
    punched.clear();
    await c?.stop().catch(() => {});
  }

  async function tick(): Promise<void> {
    if (!running || joining) return;
    const role = mesh.role;
    if (role === "service" || role === "stopped") return void (client && (await leave()));
    if (role !== "client" && !client) return;
    joining = true;
    try {
      if (!client) await join();
      for (const [id, p] of peers) if (p.link.closed) peers.delete(id);
      const c = client;
      const now = Date.now();
      if (c && peers.size < init.links && now - lastPunch >= NATD_PUNCH_INTERVAL_MS) {
        lastPunch = now;
        counters.punchRounds++;
        const results = await c.punch(null, { max: init.links - peers.size }).catch((err: unknown) => {
          log?.debug("no NAT'd node to punch yet", { error: errorLine(err) });
          return [];
        });
        emptyRounds = results.some((r) => r.connected) ? 0 : emptyRounds + 1;
        // A configured peer's pool is where the operator meant its NAT'd nodes to meet: stay there.
        const preferred = joinedAt !== undefined && (init.preferIps ?? []).includes(joinedAt.ip);
        if (peers.size === 0 && !preferred && emptyRounds >= EMPTY_ROUNDS_BEFORE_MOVE) {
          emptyRounds = 0;
          if (joinedAt) triedPools.add(joinedAt.id);
          if (triedPools.size >= mesh.candidates().length) triedPools.clear();
          log?.info("no NAT'd node met in this pool; trying another public node", { node: `${joinedAt?.ip}:${joinedAt?.port}` });
          await leave();
        }
      }
    } finally {
      joining = false;
    }
  }

  return {
    async start() {
      if (running || init.links === 0) return;
      running = true;
      timer = setInterval(() => void tick().catch((err: unknown) => log?.warn("NAT'd node upkeep failed", { error: errorLine(err) })), init.tickMs ?? NATD_TICK_MS);
      timer.unref?.();
    },
    async stop() {
      running = false;
      if (timer) clearInterval(timer);
      timer = undefined;
      await leave();
    },
    status: () => ({
      kind,
      joined: joinedAt ? `${joinedAt.ip}:${joinedAt.port}` : null,
      address: client?.joined?.address ?? null,
      nat: components.ownNat(),
      peers: [...peers].map(([id, p]) => ({ id, address: `${p.link.remote.ip}:${p.link.remote.port}`, rttMs: p.link.rttMs ?? null, since: p.since })),
    }),
    counters: () => ({
      ...counters,
      peers: peers.size,
      newhost_accepted: newHost.counters.accepted,
      newhost_refused: newHost.counters.refused,
      newhost_rate_limited: newHost.counters.rateLimited,
      newhost_probes: newHost.counters.probesSent,
    }),
    async askMember(link, memberId) {
      try {
        await exchange(link, memberId);
      } catch (err) {
        log?.debug("asking a NAT'd member for its peers failed", { id: memberId.slice(0, 16), error: errorLine(err) });
      }
    },
    addMember(link, memberId) {
      for (const [id, l] of memberLinks) if (l.closed) memberLinks.delete(id);
      if (!link.peerKey || nodeIdOf(link.peerKey) !== memberId) return;
      if (!memberLinks.has(memberId) && memberLinks.size >= MAX_HELPER_MEMBERS) return;
      memberLinks.set(memberId, link);
    },
    members() {
      const out: NatdMemberLink[] = [];
      for (const [nodeId, link] of memberLinks) {
        if (link.closed) memberLinks.delete(nodeId);
        else out.push({ nodeId, link });
      }
      return out;
    },
  };
}
