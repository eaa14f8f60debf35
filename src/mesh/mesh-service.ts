// The running mesh of a Findings node: own record, self-check, online help, candidate and mesh pools, peer sharing, switching, bans, peer cache and search (DESIGN §3, §5, §8; seed 001 §组网规则, §公钥广播与验证).
//
// Start-up (bootstrap()):
// 1. Load <home>/bans.json (user bans) and <home>/peers.json (history-based discovery).
// 2. Role: --client-only never serves; --public serves at once; otherwise the self-check
//    (self-check.ts) must confirm over TLS and QUIC that we are reachable before we serve.
// 3. Online help (online-help.ts): ask up to peers_help of the --peer / cached addresses at once
//    for records; merge them (record-merge.ts: verify → plan → key check → add).
// 4. Serving nodes build their record and fill the mesh: dialMesh to picks from the candidate
//    pool up to mesh_out; inbound links are accepted up to mesh_in.
// Running (tick()): lost links are replaced, every mesh_switch_s 1–2 outgoing links are swapped for
// fresh candidates, each new link exchanges ~mesh_share candidates both ways, RTTs refresh the
// pool, peers.json is written now and then and at stop. Client nodes repeat online help instead.
import { DEFAULTS } from "../config/defaults.ts";
import { ConfigError, errorLine } from "../errors.ts";
import type { RunCertificate } from "../identity/certificate.ts";
import type { NodeKey } from "../identity/node-key.ts";
import type { Logger } from "../ops/logger.ts";
import { formatAddress, parseAddress, type HostPort } from "../contracts/address.ts";
import type { QuicDialer } from "../transport/udp/endpoint.ts";
import { ANY_TRUST, MESH_ONLY, perHost, type RpcHandler, type RpcReply } from "../rpc/policy.ts";
import type { Router } from "../rpc/router.ts";
import { Status, type Envelope } from "../wire/codec.ts";
import { Mesh } from "../wire/gen/services_pb.ts";
import { NatClass, type NodeRecord } from "../wire/gen/findings_pb.ts";
import { createBanList, loadUserBans, type BanEntry } from "./ban-list.ts";
import { addressKeys, createCandidatePool, DEFAULT_CANDIDATE_TTL_MS, type CandidatePool } from "./candidate-pool.ts";
import { linkOf, type MeshLink } from "./link.ts";
import type { MeshLinks } from "./link-service.ts";
import { decodePeersAnswer, decodePeersRequest, encodePeersAnswer, encodePeersRequest } from "./mesh-messages.ts";
import { createMeshPool, type MeshPool } from "./mesh-pool.ts";
import { createMeshSearch, type MeshSearch, type SearchResult } from "./mesh-search.ts";
import {
  DIAL_COOLDOWN_MS,
  HELP_RETRY_MS,
  MAX_DIAL_FAILURES,
  MAX_PEERS_ANSWER_RECORDS,
  MAX_SMALL_MESSAGE_BYTES,
  MESH_CLOSE,
  MESH_FIND_METHOD,
  MESH_KEY_CHECK_METHOD,
  MESH_PEERS_METHOD,
  MESH_SELF_CHECK_ECHO_METHOD,
  MESH_SELF_CHECK_METHOD,
  MESH_TICK_MS,
  PEER_CACHE_WRITE_INTERVAL_MS,
  PEERS_BURST,
  PEERS_RATE_PER_S,
  REFILL_DELAY_MS,
  SELF_CHECK_BURST,
  SELF_CHECK_RATE_PER_S,
  STARVED_REFRESH_MAX_MS,
  SWITCH_AWAY_INTERVALS,
} from "./mesh-service-constants.ts";
import { askForHelp, type HelpTarget } from "./online-help.ts";
import { readPeerCache, writePeerCache } from "./peer-cache.ts";
import { answerKeyCheck, checkRecord, recordTcpAddress } from "./record-check.ts";
import { toJson, type RecordJson } from "./record-json.ts";
import { createRecordMerger, type RecordMerger, type Sharer } from "./record-merge.ts";
import { buildRecord, nextRecordSeq, recordAddress, recordNodeId } from "./record.ts";
import { createRateLimiter } from "./search-rate-limit.ts";
import { answerSelfCheck, createSelfChecker, type SelfCheckReport } from "./self-check.ts";

export interface MeshServiceComponents {
  links: MeshLinks;
  /** The node's UDP endpoint: QUIC handlers for apps (`findings peers/find`), self-check dials. */
  udp: QuicDialer & { readonly router: Router; readonly port: number };
  /** The TLS endpoint's bound port (the mesh port in our record). */
  tcpPort: () => number;
  nodeKey: NodeKey;
  cert: RunCertificate;
  log: Logger;
  home: string;
  /** The node's own NAT class from its self-probe (DESIGN §6), for the record; absent = Public. */
  ownNat?: { current(): string | null; onChange(cb: () => void): () => void };
  /** @default Date.now */
  now?: () => number;
  /** @default Math.random */
  rand?: () => number;
}

export interface MeshServiceInit {
  /** Bound host (config `host`); a wildcard means the advertised IP is learned from peers. */
  host: string;
  /** Bootstrap peers, "ip:port[#key]" (config `peers`, --peer). UDP and TCP port are taken as equal. */
  peers: readonly string[];
  /** Serve without the self-check (--public). @default false */
  public?: boolean;
  /** Never serve (--client-only). @default false */
  clientOnly?: boolean;
  /** Candidate pool size (config `shortlist`). @default 100 */
  shortlist?: number;
  /** @default 8 */
  meshOut?: number;
  /** @default 8 */
  meshIn?: number;
  /** config `mesh_switch_s` × 1000. @default 300 000 */
  switchIntervalMs?: number;
  /** Helpers asked at once (config `peers_help`). @default 10 */
  peersHelp?: number;
  /** Candidates shared on each new link (config `mesh_share`). @default 10 */
  shareCount?: number;
  /** config `peer_cache_days`. @default 7 days */
  peerCacheMaxAgeMs?: number;
  /** Kind → reward address (config [stakes]); every key but "*" is a kind we serve. @default {} */
  stakes?: Readonly<Record<string, string>>;
  /** Identity id in our record (config `user_id`, else the node id). */
  identityId?: string;
  /** @default MESH_TICK_MS */
  tickMs?: number;
}

export type MeshRole = "new" | "checking" | "service" | "client" | "stopped";

export interface CandidateStatus {
  id: string;
  address: string;
  rttMs: number | null;
  lastSeen: number;
  kinds: string[];
}

export interface MeshLinkStatus {
  peer: string;
  remote: string;
  direction: "in" | "out";
  ageMs: number;
  rttMs: number | null;
}

export interface MeshServiceStatus {
  role: MeshRole;
  serving: boolean;
  advertisedIp: string | null;
  record: RecordJson | null;
  selfCheck: (Omit<SelfCheckReport, "elapsedMs"> & { elapsedMs: number }) | null;
  candidates: CandidateStatus[];
  mesh: { out: number; in: number; maxOut: number; maxIn: number; links: MeshLinkStatus[] };
  bans: BanEntry[];
  counters: {
    messagesIn: Record<string, number>;
    messagesOut: Record<string, number>;
    events: Record<string, number>;
  };
  peerCache: { loaded: number; written: number; lastWriteAt: number | null };
}

export interface MeshService {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Our signed record while we serve. */
  record(): NodeRecord | undefined;
  readonly role: MeshRole;
  status(): MeshServiceStatus;
  /** Flat numbers for /metrics. */
  counters(): Record<string, number>;
  /** A search started at this node (DESIGN §8). */
  find(kind: string): Promise<SearchResult>;
  /** Resolves when the start-up bootstrap (self-check, help, first merge) is done. */
  readonly ready: Promise<void>;
}

export function createMeshService(components: MeshServiceComponents, init: MeshServiceInit): MeshService {
  const { links, udp, nodeKey, cert, home } = components;
  const log = components.log.child({ room: "mesh" });
  const now = components.now ?? Date.now;
  const rand = components.rand ?? Math.random;
  const myId = nodeKey.nodeId;
  const switchIntervalMs = init.switchIntervalMs ?? DEFAULTS.mesh_switch_s * 1000;
  const shareCount = init.shareCount ?? DEFAULTS.mesh_share;
  const peersHelp = init.peersHelp ?? DEFAULTS.peers_help;
  const stakes = { ...(init.stakes ?? {}) };
  const kinds = Object.keys(stakes).filter((k) => k !== "*");
  const wildcardHost = init.host === "0.0.0.0" || init.host === "::" || init.host === "";

  const candidates: CandidatePool = createCandidatePool({ selfId: myId, capacity: init.shortlist, ttlMs: DEFAULT_CANDIDATE_TTL_MS });
  const meshPool: MeshPool = createMeshPool({ maxOut: init.meshOut, maxIn: init.meshIn, switchIntervalMs, now: now() });
  const bans = createBanList();
  const selfChecker = createSelfChecker({ udp });
  const peersLimiter = createRateLimiter({ ratePerS: PEERS_RATE_PER_S, burst: PEERS_BURST });
  const selfCheckLimiter = createRateLimiter({ ratePerS: SELF_CHECK_RATE_PER_S, burst: SELF_CHECK_BURST });

  /** Live mesh links by peer node id (one per peer). */
  const live = new Map<string, MeshLink>();
  const dialing = new Set<string>();
  /** node id → time until which we do not dial it */
  const cooldown = new Map<string, number>();
  const failures = new Map<string, number>();
  const messagesIn: Record<string, number> = {};
  const messagesOut: Record<string, number> = {};
  const events: Record<string, number> = {};
  const bump = (m: Record<string, number>, k: string, n = 1) => void (m[k] = (m[k] ?? 0) + n);
  const countIn = (method: string) => bump(messagesIn, method);
  const countOut = (method: string) => bump(messagesOut, method);

  let role: MeshRole = "new";
  let serving = false;
  let ownRecord: NodeRecord | undefined;
  let advertisedIp: string | null = wildcardHost ? null : init.host;
  let selfCheck: SelfCheckReport | null = null;
  let lifetime = new AbortController();
  let tickTimer: ReturnType<typeof setInterval> | undefined;
  let refillTimer: ReturnType<typeof setTimeout> | undefined;
  let unsubscribe: (() => void) | undefined;
  let removeHandlers: (() => void) | undefined;
  let lastHelpAt = 0;
  let lastSelfCheckAt = 0;
  let lastRefreshAt = 0;
  let refreshWaitMs = HELP_RETRY_MS;
  let helpWaitMs = HELP_RETRY_MS;
  let refreshing = false;
  let startedAt = now();
  let helping = false;
  let lastCacheWriteAt: number | null = null;
  let cacheLoaded = 0;
  let cacheWritten = 0;
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));

  const merger: RecordMerger = createRecordMerger({
    pool: candidates,
    bans,
    now,
    check: (rec) => checkRecord(links, nodeKey, rec, { signal: lifetime.signal, onRequest: countOut }),
    punish,
  });

  const search: MeshSearch = createMeshSearch({
    links: () => [...live.values()],
    local: (kind) => [...(ownRecord && ownRecord.kinds.includes(kind) ? [ownRecord] : []), ...candidates.byKind(kind)],
    contradicts,
    onLie: (link, why) => punish(sharerOf(link), why),
    count: (dir, method) => (dir === "in" ? countIn(method) : countOut(method)),
    now,
  });

  // ---- bans ----

  function sharerOf(link: MeshLink): Sharer {
    return { label: `${link.peerNodeId?.slice(0, 16) ?? "?"}@${formatAddress(link.remote.ip, link.remote.port)}`, id: link.peerNodeId, ip: link.remote.ip };
  }

  /** Bans a sharer (4 h) by node id and by the service IP we know it at, drops its record and link. */
  function punish(sharer: Sharer, why: string): void {
    const t = now();
    let fresh = false;
    for (const target of [sharer.id, sharer.ip]) {
      if (!target || bans.isBanned(target, t)) continue;
      bans.ban(target, { reason: why, now: t });
      fresh = true;
    }
    if (!fresh) return;
    bump(events, "bansIssued");
    log.warn("peer banned", { peer: sharer.label, reason: why });
    if (sharer.id) {
      candidates.remove(sharer.id);
      live.get(sharer.id)?.close(MESH_CLOSE.banned.code, MESH_CLOSE.banned.reason);
    }
    for (const c of candidates.list()) {
      if (c.record.addresses.some((a) => a.ip === sharer.ip)) candidates.remove(c.id);
    }
  }

  function isPeerBanned(link: MeshLink, t: number): boolean {
    if (link.peerNodeId && bans.isBanned(link.peerNodeId, t)) return true;
    // The service address of a mesh link, or the socket's source for first-contact links.
    return bans.isBanned(link.trust === "mesh" ? link.remote.ip : link.socketRemote.ip, t);
  }

  /** A forwarded record that claims an address a key-checked candidate holds under another key. */
  function contradicts(rec: NodeRecord): boolean {
    const id = recordNodeId(rec);
    const keys = new Set(addressKeys(rec));
    return candidates.list().some((c) => c.id !== id && addressKeys(c.record).some((k) => keys.has(k)));
  }

  // ---- own record ----

  function rebuildRecord(): void {
    if (!serving || !advertisedIp) return;
    const t = now();
    try {
      ownRecord = buildRecord(nodeKey, {
        addresses: [{ ip: advertisedIp, udpPort: udp.port, tcpPort: components.tcpPort() }],
        spki: cert.spki,
        // A service node is reachable (self-check or --public): FullC when its own probe says so, else Public.
        nat: components.ownNat?.current() === "full-cone" ? NatClass.NAT_FULL_CONE : NatClass.NAT_PUBLIC,
        kinds,
        stakes,
        identityId: init.identityId || myId,
        seq: nextRecordSeq(ownRecord?.seq, t),
        now: t,
      });
      log.info("own record", { address: recordAddress(ownRecord), kinds });
    } catch (err) {
      log.error("cannot build own record", { error: errorLine(err) });
      ownRecord = undefined;
    }
  }

  function becomeService(ip: string | null): void {
    serving = true;
    role = "service";
    if (wildcardHost && ip) advertisedIp = ip;
    rebuildRecord();
    scheduleRefill();
  }

  // ---- mesh links ----

  function onMeshLink(link: MeshLink): void {
    const id = link.peerNodeId;
    if (!id) return;
    const t = now();
    if (role === "stopped") return;
    if (!serving) return void link.close(MESH_CLOSE.notServing.code, MESH_CLOSE.notServing.reason);
    if (isPeerBanned(link, t)) {
      bump(events, "linksRefusedBanned");
      return void link.close(MESH_CLOSE.banned.code, MESH_CLOSE.banned.reason);
    }
    if (wildcardHost && !advertisedIp && link.local.ip) {
      // --public on a wildcard host with nobody to ask: the address our peer reached is ours.
      advertisedIp = link.local.ip;
      rebuildRecord();
    }
    const existing = live.get(id);
    if (existing && existing.isOpen) {
      // Both sides keep the link dialled by the smaller node id, so a crossing pair of dials
      // ends with exactly one link, the same one at both ends.
      const dialer = (l: MeshLink) => (l.direction === "out" ? myId : id);
      const keepNew = dialer(link) < dialer(existing);
      bump(events, "linksDuplicate");
      if (!keepNew) return void link.close(MESH_CLOSE.duplicate.code, MESH_CLOSE.duplicate.reason);
      live.delete(id);
      meshPool.remove(id);
      existing.close(MESH_CLOSE.duplicate.code, MESH_CLOSE.duplicate.reason);
    }
    const added = meshPool.add({ id, direction: link.direction, openedAt: t, rttMs: link.rttMs ?? undefined });
    if (added !== "added") {
      bump(events, "linksRefusedFull");
      return void link.close(MESH_CLOSE.full.code, MESH_CLOSE.full.reason);
    }
    live.set(id, link);
    failures.delete(id);
    candidates.seen(id, t);
    bump(events, link.direction === "out" ? "linksOut" : "linksIn");
    link.onClose((info) => {
      if (live.get(id) === link) {
        live.delete(id);
        meshPool.remove(id);
      }
      search.forget(id);
      // The peer refused us (full, banned, not serving): try someone else for a while.
      if (info.code === MESH_CLOSE.full.code || info.code === MESH_CLOSE.notServing.code || info.code === MESH_CLOSE.banned.code) {
        cooldown.set(id, now() + DIAL_COOLDOWN_MS);
      }
      scheduleRefill();
    });
    void exchange(link);
  }

  /** Peer sharing on a new link: ask for ~mesh_share records (the peer does the same with us). */
  async function exchange(link: MeshLink): Promise<void> {
    let answer: Envelope;
    try {
      countOut(MESH_PEERS_METHOD);
      answer = await link.request(MESH_PEERS_METHOD, encodePeersRequest(shareCount), { signal: lifetime.signal });
    } catch {
      return; // the link went: nothing to merge
    }
    if (answer.status !== Status.OK) return;
    let records: NodeRecord[];
    try {
      records = decodePeersAnswer(answer.payload);
    } catch (err) {
      punish(sharerOf(link), `undecodable peers answer: ${errorLine(err)}`);
      return;
    }
    await merger.merge(records, sharerOf(link));
  }

  /** Pool refresh: while the candidate pool is not full, ask one random mesh link for a share, with
   *  a back-off: HELP_RETRY_MS after a share that brought new records, doubling after each one that
   *  did not, up to the switch interval. Without it a node whose links all came early (the first
   *  node of a network: its peers knew nobody yet when they linked) learns nothing until its links
   *  switch; with it, a network smaller than the shortlist costs one request per switch interval.
   *  While outgoing links are missing and no candidate is left to dial, the wait stays short
   *  (≤ STARVED_REFRESH_MAX_MS): that node cannot do its part of the mesh until it learns more. */
  function refreshPool(t: number): void {
    if (refreshing || shareCount === 0 || candidates.size >= candidates.capacity || !live.size) return;
    const starved = meshPool.deficit() > 0 && dialing.size === 0 && dialable(t).length === 0;
    if (t - lastRefreshAt < (starved ? Math.min(refreshWaitMs, STARVED_REFRESH_MAX_MS) : refreshWaitMs)) return;
    const links = [...live.values()];
    const link = links[Math.floor(rand() * links.length)]!;
    refreshing = true;
    lastRefreshAt = t;
    const before = merger.counters.recordsAdded;
    bump(events, "poolRefreshes");
    void exchange(link).finally(() => {
      const cap = Math.max(HELP_RETRY_MS, switchIntervalMs);
      refreshWaitMs = merger.counters.recordsAdded > before ? HELP_RETRY_MS : Math.min(cap, refreshWaitMs * 2);
      refreshing = false;
    });
  }

  function scheduleRefill(): void {
    if (refillTimer || role === "stopped") return;
    refillTimer = setTimeout(() => {
      refillTimer = undefined;
      fill();
    }, REFILL_DELAY_MS);
  }

  function dialable(t: number): NodeRecord[] {
    return candidates
      .list()
      .filter((c) => !live.has(c.id) && !dialing.has(c.id) && (cooldown.get(c.id) ?? 0) <= t && !bans.isBanned(c.id, t))
      .map((c) => c.record);
  }

  /** Dials picks from the candidate pool for the missing outgoing links. */
  function fill(): void {
    if (!serving || role === "stopped" || !ownRecord) return;
    const want = meshPool.deficit() - dialing.size;
    if (want <= 0) return;
    const t = now();
    for (const [id, until] of cooldown) if (until <= t) cooldown.delete(id);
    const exclude = candidates.list().filter((c) => live.has(c.id) || dialing.has(c.id) || cooldown.has(c.id) || bans.isBanned(c.id, t)).map((c) => c.id);
    for (const rec of candidates.pickForSwitch(want, rand, { exclude })) void dial(rec);
  }

  async function dial(rec: NodeRecord): Promise<void> {
    const id = recordNodeId(rec);
    const addr = recordTcpAddress(rec);
    if (!addr) return;
    dialing.add(id);
    try {
      countOut("mesh.dial");
      await links.dialMesh(addr, rec.publicKey, { signal: lifetime.signal });
      bump(events, "dialsOk");
    } catch (err) {
      if (role === "stopped") return;
      bump(events, "dialsFailed");
      log.debug("mesh dial failed", { peer: id.slice(0, 16), address: formatAddress(addr.ip, addr.port), error: errorLine(err) });
      cooldown.set(id, now() + DIAL_COOLDOWN_MS);
      const n = (failures.get(id) ?? 0) + 1;
      if (n >= MAX_DIAL_FAILURES) {
        // Down or unwilling: drop it so we stop sharing it; sharing brings it back when it is up.
        failures.delete(id);
        candidates.remove(id);
        bump(events, "candidatesDropped");
      } else failures.set(id, n);
    } finally {
      dialing.delete(id);
      scheduleRefill();
    }
  }

  // ---- online help, self-check, cache ----

  function configTargets(): { help: HelpTarget; udp: HostPort }[] {
    const out: { help: HelpTarget; udp: HostPort }[] = [];
    for (const text of init.peers) {
      try {
        const a = parseAddress(text, "peers");
        out.push({ help: { addr: { ip: a.ip, port: a.port }, publicKey: a.publicKey }, udp: { ip: a.ip, port: a.port } });
      } catch (err) {
        log.warn("bad peer address skipped", { peer: text, error: errorLine(err) });
      }
    }
    return out;
  }

  function recordTargets(records: readonly NodeRecord[]): { help: HelpTarget; udp: HostPort }[] {
    const out: { help: HelpTarget; udp: HostPort }[] = [];
    for (const rec of records) {
      const a = rec.addresses.find((x) => x.tcpPort && x.udpPort);
      if (a) out.push({ help: { addr: { ip: a.ip, port: a.tcpPort }, publicKey: rec.publicKey }, udp: { ip: a.ip, port: a.udpPort } });
    }
    return out;
  }

  function shuffle<T>(xs: T[]): T[] {
    for (let i = xs.length - 1; i > 0; i--) {
      const j = Math.floor(rand() * (i + 1));
      [xs[i], xs[j]] = [xs[j]!, xs[i]!];
    }
    return xs;
  }

  async function help(targets: readonly HelpTarget[]): Promise<void> {
    if (!targets.length || helping) return;
    helping = true;
    lastHelpAt = now();
    const before = merger.counters.recordsAdded;
    try {
      const round = await askForHelp(links, targets.slice(0, peersHelp), { now: now(), signal: lifetime.signal, onRequest: countOut });
      if (round.conflicts.length) {
        bump(events, "helpConflicts", round.conflicts.length);
        log.info("helpers disagree on keys; the key checks decide", { addresses: round.conflicts.slice(0, 5) });
      }
      const merges: Promise<void>[] = [];
      for (const a of round.answers) {
        // A helper is known by the address we dialled (first contact proves no key).
        const sharer: Sharer = { label: formatAddress(a.target.addr.ip, a.target.addr.port), ip: a.target.addr.ip };
        if (a.lie) {
          punish(sharer, a.lie);
          continue;
        }
        if (a.error) log.debug("online help failed", { helper: sharer.label, error: a.error });
        if (a.records.length) merges.push(merger.merge(a.records, sharer));
      }
      await Promise.all(merges);
      bump(events, "helpRounds");
    } finally {
      helping = false;
      // HELP_RETRY_MS after a round that brought records, doubling up to the switch interval after
      // each that did not (a network smaller than mesh_out asks once per interval, not every 3 s).
      const cap = Math.max(HELP_RETRY_MS, switchIntervalMs);
      helpWaitMs = merger.counters.recordsAdded > before ? Math.min(HELP_RETRY_MS, cap) : Math.min(cap, helpWaitMs * 2);
    }
  }

  async function bootstrap(): Promise<void> {
    const t = now();
    const cache = readPeerCache(home, { now: t, maxAgeMs: init.peerCacheMaxAgeMs });
    if (cache.warning) log.warn(cache.warning);
    cacheLoaded = cache.entries.length;
    const cached = cache.entries.map((e) => e.record);
    const targets = [...shuffle(configTargets()), ...shuffle(recordTargets(cached))].slice(0, peersHelp);
    if (cached.length) log.info("peer cache read", { peers: cached.length, dropped: cache.dropped });

    if (init.clientOnly) {
      role = "client";
    } else if (init.public) {
      becomeService(null);
    } else if (!targets.length) {
      role = "client";
      log.warn("no peers to run the self-check with: this node will not serve (give --peer ADDR, or --public for the first node of a network)");
    } else {
      role = "checking";
    }
    const helpDone = Promise.all([help(targets.map((x) => x.help)), merger.merge(cached, null)]);
    if (role === "checking") await runSelfCheck(targets.map((x) => x.udp));
    await helpDone;
    fill();
  }

  /** Serves when one checker reached us over TLS and QUIC; otherwise stays a client (and tick()
   *  tries again every switch interval: the checkers may have been down, a port forward added). */
  async function runSelfCheck(targets: readonly HostPort[]): Promise<void> {
    lastSelfCheckAt = now();
    selfCheck = await selfChecker.run(targets, { tcpPort: components.tcpPort(), udpPort: udp.port }, { signal: lifetime.signal, onRequest: countOut });
    lastSelfCheckAt = now();
    for (const r of selfCheck.results) {
      if (r.lied) punish({ label: r.checker, ip: parseAddress(r.checker).ip }, "claimed a self-check dial-back that never came");
    }
    if (role === "stopped" || serving) return;
    if (selfCheck.reachable) {
      log.info("self-check passed: serving", { observedIp: selfCheck.observedIp, checkers: selfCheck.results.filter((r) => r.sawTcp && r.sawUdp).length });
      becomeService(selfCheck.observedIp);
    } else {
      role = "client";
      log.warn("self-check failed: not reachable from the network, this node does not serve for now", {
        results: selfCheck.results.map((r) => ({ checker: r.checker, tcp: r.sawTcp, udp: r.sawUdp, error: r.error })),
      });
    }
  }

  /** Addresses to ask: the configured peers, then known candidates. */
  function knownTargets(): { help: HelpTarget; udp: HostPort }[] {
    return [...shuffle(configTargets()), ...recordTargets(candidates.pickForSwitch(peersHelp, rand))].slice(0, peersHelp);
  }

  function writeCache(): void {
    const t = now();
    const entries = candidates.list().map((c) => ({ record: c.record, lastSeen: c.lastSeen }));
    // An empty pool (nothing learned this run) must not erase what an earlier run found.
    if (!entries.length) return;
    try {
      cacheWritten = writePeerCache(home, entries, { now: t, maxAgeMs: init.peerCacheMaxAgeMs });
      lastCacheWriteAt = t;
    } catch (err) {
      log.warn("cannot write the peer cache", { error: errorLine(err) });
    }
  }

  function tick(): void {
    if (role === "stopped") return;
    const t = now();
    for (const id of candidates.expire(t)) cooldown.delete(id);
    bans.prune(t);
    for (const [id, link] of live) {
      candidates.seen(id, t);
      if (link.rttMs !== null) {
        candidates.sampleRtt(id, { rttMs: link.rttMs, now: t });
        meshPool.setRtt(id, link.rttMs);
      }
    }
    if (serving) {
      const plan = meshPool.planSwitch(t, rand, { candidates: dialable(t).length });
      if (plan && plan.drop.length) {
        bump(events, "switches");
        for (const id of plan.drop) {
          cooldown.set(id, t + SWITCH_AWAY_INTERVALS * switchIntervalMs);
          live.get(id)?.close(MESH_CLOSE.switched.code, MESH_CLOSE.switched.reason);
        }
      }
      fill();
      refreshPool(t);
      // Too few candidates to fill the mesh (we started before our peers knew anyone, or everyone
      // we knew is gone): ask again, backing off while it brings nothing.
      if (candidates.size < meshPool.maxOut && t - lastHelpAt > helpWaitMs) void help(knownTargets().map((x) => x.help));
    } else if (role === "client") {
      if (!init.clientOnly && t - lastSelfCheckAt > switchIntervalMs) {
        const targets = knownTargets();
        if (targets.length) {
          role = "checking";
          void runSelfCheck(targets.map((x) => x.udp));
        }
      }
      // A client keeps its pool fresh by asking known nodes now and then (seed 001 §节点组网: 挂机).
      if (t - lastHelpAt > switchIntervalMs) void help(knownTargets().map((x) => x.help));
    }
    if (t - (lastCacheWriteAt ?? startedAt) > PEER_CACHE_WRITE_INTERVAL_MS) writeCache();
  }

  // ---- handlers ----

  function counted(method: string, fn: RpcHandler): RpcHandler {
    return (payload, ctx) => {
      countIn(method);
      return fn(payload, ctx);
    };
  }

  const onPeers: RpcHandler = (payload, ctx) => {
    const link = linkOf(ctx);
    const t = now();
    if (isPeerBanned(link, t)) return { status: Status.REFUSED, error: "banned" };
    const rateKey = link.trust === "mesh" ? `id:${link.peerNodeId}` : `ip:${link.socketRemote.ip}`;
    if (!peersLimiter.allow(rateKey, t)) return { status: Status.RATE_LIMITED, error: "too many peers requests; slow down" };
    const max = decodePeersRequest(payload);
    const n = Math.min(max || shareCount, shareCount);
    const records = [...(ownRecord ? [ownRecord] : []), ...candidates.share(n, link.peerNodeId ?? undefined, rand)];
    return encodePeersAnswer(records);
  };

  const onKeyCheck: RpcHandler = (payload) => answerKeyCheck(nodeKey, payload, serving ? ownRecord : undefined);

  const onEcho: RpcHandler = (payload) => selfChecker.echo(payload, "tcp");

  const onFind: RpcHandler = (payload, ctx) => {
    const link = linkOf(ctx);
    if (isPeerBanned(link, now())) return { status: Status.REFUSED, error: "banned" };
    return search.onMeshRequest(payload, link);
  };

  /** QUIC side: apps and `findings peers/find`, and the self-check (its source IP matters). */
  function quic(method: string, fn: (payload: Uint8Array, remoteIp: string, signal: AbortSignal) => Promise<RpcReply> | RpcReply): RpcHandler {
    return async (payload, ctx) => {
      if (method !== MESH_FIND_METHOD) countIn(method);
      if (bans.isBanned(ctx.remote.ip, now())) return { status: Status.REFUSED, error: "banned" };
      try {
        return await fn(payload, ctx.remote.ip, ctx.signal);
      } catch (err) {
        return { status: Status.BAD_REQUEST, error: errorLine(err) };
      }
    };
  }

  /** Registers every mesh method with its policy; returns the disposer. Peers and searches keep their own
   *  per-peer limiters (a mesh peer is counted by node id); the router's per-host rates are a backstop, loose
   *  enough for many nodes on one host (tests, NAT'd neighbours). */
  function registerHandlers(): () => void {
    const small = { maxPayloadBytes: MAX_SMALL_MESSAGE_BYTES, maxInFlight: 64 } as const;
    const overWss = links.router.addAll([
      [Mesh.method.peers, { ...small, transports: ["wss"], trust: ANY_TRUST, rate: perHost(20, 100), handler: counted(MESH_PEERS_METHOD, onPeers) }],
      [Mesh.method.keyCheck, { ...small, transports: ["wss"], trust: ANY_TRUST, rate: perHost(20, 100), handler: counted(MESH_KEY_CHECK_METHOD, onKeyCheck) }],
      [Mesh.method.selfCheckEcho, { ...small, transports: ["wss"], trust: ANY_TRUST, rate: perHost(20, 100), handler: counted(MESH_SELF_CHECK_ECHO_METHOD, onEcho) }],
      [Mesh.method.find, { ...small, transports: ["wss"], trust: MESH_ONLY, rate: perHost(100, 500), handler: onFind }],
    ]);
    const overQuic = udp.router.addAll([
      [
        Mesh.method.peers,
        {
          ...small,
          transports: ["quic"],
          trust: ANY_TRUST,
          rate: perHost(20, 100),
          handler: quic(MESH_PEERS_METHOD, (payload, ip) => {
            if (!peersLimiter.allow(`ip:${ip}`, now())) return { status: Status.RATE_LIMITED, error: "too many peers requests; slow down" };
            const max = decodePeersRequest(payload);
            const n = Math.min(max || MAX_PEERS_ANSWER_RECORDS, MAX_PEERS_ANSWER_RECORDS);
            const sorted = candidates.list().sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
            const records = [...(ownRecord ? [ownRecord] : []), ...sorted.map((c) => c.record)].slice(0, n);
            return { status: Status.OK, payload: encodePeersAnswer(records) };
          }),
        },
      ],
      [Mesh.method.find, { ...small, transports: ["quic"], trust: ANY_TRUST, rate: perHost(20, 100), handler: quic(MESH_FIND_METHOD, (payload, ip) => search.onAppRequest(payload, ip)) }],
      [Mesh.method.selfCheckEcho, { ...small, transports: ["quic"], trust: ANY_TRUST, rate: perHost(20, 100), handler: quic(MESH_SELF_CHECK_ECHO_METHOD, (payload) => selfChecker.echo(payload, "udp")) }],
      [
        Mesh.method.selfCheck,
        {
          // Each check dials the asker back on both transports.
          maxPayloadBytes: MAX_SMALL_MESSAGE_BYTES,
          maxInFlight: 16,
          transports: ["quic"],
          trust: ANY_TRUST,
          rate: perHost(1, 10),
          handler: quic(MESH_SELF_CHECK_METHOD, (payload, ip, signal) => {
            if (!selfCheckLimiter.allow(ip, now())) return { status: Status.RATE_LIMITED, error: "too many self-checks; slow down" };
            return answerSelfCheck({ udp, links }, payload, ip, { signal, onRequest: countOut });
          }),
        },
      ],
    ]);
    return () => {
      overWss();
      overQuic();
    };
  }

  // ---- lifecycle and status ----

  const service: MeshService = {
    ready,
    get role() {
      return role;
    },
    record: () => (serving ? ownRecord : undefined),
    async start() {
      if (role !== "new") return;
      try {
        bans.setUserEntries(loadUserBans(home));
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError("bans.json", errorLine(err));
      }
      role = "client";
      startedAt = now();
      lifetime = new AbortController();
      removeHandlers = registerHandlers();
      const offLinks = links.onMeshLink(onMeshLink);
      // A new own-class result (e.g. FullC) goes into a fresh record with a higher seq.
      const offNat = components.ownNat?.onChange(() => rebuildRecord());
      unsubscribe = () => {
        offLinks();
        offNat?.();
      };
      tickTimer = setInterval(tick, init.tickMs ?? MESH_TICK_MS);
      void bootstrap()
        .catch((err) => log.error("mesh bootstrap failed", { error: errorLine(err) }))
        .finally(resolveReady);
    },
    async stop() {
      if (role === "stopped") return;
      const wasRunning = role !== "new";
      role = "stopped";
      lifetime.abort(new Error("the mesh service is stopping"));
      clearInterval(tickTimer);
      clearTimeout(refillTimer);
      unsubscribe?.();
      removeHandlers?.();
      if (wasRunning) writeCache();
      resolveReady();
    },
    status() {
      const t = now();
      return {
        role,
        serving,
        advertisedIp,
        record: serving && ownRecord ? toJson(ownRecord) : null,
        selfCheck: selfCheck ? { ...selfCheck, elapsedMs: Math.round(selfCheck.elapsedMs) } : null,
        candidates: candidates
          .list()
          .sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
          .map((c) => ({ id: c.id, address: recordAddress(c.record), rttMs: c.rttMs === null ? null : round(c.rttMs), lastSeen: c.lastSeen, kinds: [...c.record.kinds] })),
        mesh: {
          out: meshPool.list("out").length,
          in: meshPool.list("in").length,
          maxOut: meshPool.maxOut,
          maxIn: meshPool.maxIn,
          links: [...live].map(([id, l]) => ({
            peer: id,
            remote: formatAddress(l.remote.ip, l.remote.port),
            direction: l.direction,
            ageMs: t - l.openedAt,
            rttMs: l.rttMs === null ? null : round(l.rttMs),
          })),
        },
        bans: bans.list(t),
        counters: { messagesIn: { ...messagesIn }, messagesOut: { ...messagesOut }, events: { ...events, ...merger.counters } },
        peerCache: { loaded: cacheLoaded, written: cacheWritten, lastWriteAt: lastCacheWriteAt },
      };
    },
    counters() {
      const sum = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
      return {
        mesh_candidates: candidates.size,
        mesh_links_out: meshPool.list("out").length,
        mesh_links_in: meshPool.list("in").length,
        mesh_bans: bans.size,
        mesh_messages_in: sum(messagesIn),
        mesh_messages_out: sum(messagesOut),
        mesh_switches: events.switches ?? 0,
        mesh_key_checks_failed: merger.counters.checksKeyFailed,
      };
    },
    find: (kind) => search.find(kind),
  };
  return service;
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
