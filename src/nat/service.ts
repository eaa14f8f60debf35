// The NAT services of a node (DESIGN §6; STUN2 seed 000 §提供的服务 1–2): STUN:Cone and STUN:Live for clients over
// QUIC, NewHost for peers over the mesh, the list of probe servers, and the node's own NAT class.
//
//   QUIC (any link; every datagram goes only to an address the requester proved it owns):
//     app.whoami (STUN:Addr, transport) · nat.begin · nat.passage · nat.formal (cone-server.ts) · nat.servers ·
//     nat.live-begin · nat.live-schedule · nat.live-end (lifetime-server.ts); policies in routes.ts
//   raw on the shared socket: hello-formal / hello-live control datagrams (control-packet.ts)
//   mesh (bootstrapped links only): nat.new-host (newhost-delegate.ts), which this node also sends as a source:
//     an order sealed to each delegate, carrying the client's proof of work (newhost-proof.ts) and the consent
//     token that delegate gave the client.
//   NAT'd members of our findings pool (newhost-member.ts): asked first, on their own links, to send one NewHost
//     probe each to the target we proved; they need no consent token, our sealed order vouches for the target.
//   HTTPS on the TLS port: GET /nat/consent (newhost-consent.ts), the token a client brings to a source server.
//   own class: at start and every SELF_PROBE_INTERVAL_MS the node runs `findings probe` against its peers from its
//     service IP and keeps the result (ownClass()); until one succeeds it retries every SELF_PROBE_RETRY_MS.
import { bytesToHex } from "@noble/hashes/utils.js";
import { sha256 } from "@noble/hashes/sha2.js";
import { createSocket } from "node:dgram";
import { isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { errorLine } from "../errors.ts";
import { METHOD } from "../rpc/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { nodeIdOf } from "../identity/index.ts";
import type { MeshLink } from "../mesh/index.ts";
import type { Router } from "../rpc/index.ts";
import type { LinkEvent, LinkListener } from "../transport/index.ts";
import type { RawDatagramInfo } from "../transport/index.ts";
import { decodeMessage, encodeMessage, Status } from "../wire/index.ts";
import { NatServersAnswerSchema, NewHostReportSchema } from "../wire/index.ts";
import { createConeServer, type DelegateOutcome, type NewHostRequest } from "./cone-server.ts";
import { controlToken, decodeControl } from "./control-packet.ts";
import { createLifetimeServer } from "./lifetime-server.ts";
import { natRoutes } from "./routes.ts";
import { natLabel, type NatClassName, type NatLabel } from "./class.ts";
import { MAX_SERVERS_ANSWER, NEWHOST_ORDER_ID_BYTES } from "./constants.ts";
import { createNewHostDelegate, type NewHostDelegate } from "./newhost-delegate.ts";
import { orderMemberNewHost, usableMembers, type NatdMemberLink } from "./newhost-member.ts";
import { consentRoute, createConsentIssuer, NEWHOST_CONSENT_PATH } from "./newhost-consent.ts";
import type { HttpRouteTable } from "../transport/index.ts";
import { sealNewHostOrder } from "./newhost-proof.ts";
import { runProbe, type ProbeOptions } from "./probe-client.ts";
import type { ProbeReport } from "./probe-report.ts";
import { routeSourceIp } from "./probe-sockets.ts";
import { RecentContacts, trackLinks } from "./recent-contacts.ts";
import { formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";
import type { Logger } from "../contracts/index.ts";
import type { Histogram } from "../contracts/index.ts";

/** How long a source server waits for its delegates' answers, in ms (one mesh round trip plus their burst). */
const DELEGATE_TIMEOUT_MS = 2_000;
/** Delegates asked per formal step (DESIGN §6: "≥ 2 other nodes"); more would break the traffic budget below. */
const MAX_DELEGATES = 2;
/** A serving node probes its own NAT this often, in ms (its address or its router may change). */
const SELF_PROBE_INTERVAL_MS = 30 * 60_000;
/** Until the first self-probe succeeded, it is retried this often, in ms (peers come up one by one). */
const SELF_PROBE_RETRY_MS = 5_000;

/** What the service needs from the node's UDP endpoint (createUdpEndpoint satisfies it). */
export interface NatUdp {
  readonly host: string;
  readonly port: number;
  sendRaw(bytes: Uint8Array, port: number, ip: string): Promise<void>;
  /** Serves the QUIC tests (the node's shared router). */
  readonly router: Router;
  on(event: LinkEvent, fn: LinkListener): () => void;
}

/** What the service needs from the mesh links (createMeshLinks satisfies it). */
export interface NatMesh {
  links(): MeshLink[];
  /** Serves NewHost orders from mesh peers. */
  readonly router: Router;
}

export interface NatServiceComponents {
  udp: NatUdp;
  mesh: NatMesh;
  nodeKey: NodeKey;
  log?: Logger;
  /** UDP endpoints of other Findings nodes, for nat.servers and the self-probe. @default the mesh links' peers,
   *  on their TCP port (DESIGN §2: UDP and TCP share the port number by default) */
  knownServers?: () => Endpoint[];
  /** The TLS port's HTTPS routes, where clients fetch NewHost consent tokens. @default none (this node then
   *  cannot be a NewHost delegate: no client can bring its consent) */
  https?: Pick<HttpRouteTable, "add" | "remove">;
  /** NAT'd members of our findings pool with their links: NewHost helpers that need no consent token. @default none */
  natdMembers?: () => readonly NatdMemberLink[];
  /** Times each self-probe that ran, by the class it found ("none" when it found none). */
  selfProbeSeconds?: Histogram<"nat_class">;
}

export interface NatServiceInit {
  /** The address the node binds (config `host`): new-port sockets bind it too, so NewPort leaves from our IP. */
  host: string;
  /** Wait for negative answers in the self-probe, ms. @default probe_timeout_s of defaults.toml */
  probeTimeoutMs?: number;
  /** Probe our own NAT class at start and periodically. @default true */
  selfProbe?: boolean;
  /** @default SELF_PROBE_INTERVAL_MS */
  selfProbeIntervalMs?: number;
  /** @default SELF_PROBE_RETRY_MS */
  selfProbeRetryMs?: number;
  /** Own IPs usable as NewHost sources. @default the host IP plus the other addresses of its interface */
  ownIps?: () => { main: string | null; others: readonly string[] };
  /** Serve NAT tests to clients and NewHost orders to peers; a client-only node (config `client_only`) refuses
   *  them and only measures its own class. @default true */
  serve?: boolean;
  /** Delegate NewHost probes to special-range targets (config allow_special_targets). @default allow_special_targets of defaults.toml */
  allowSpecialTargets?: boolean;
  /** Proof-of-work bits required of clients (tests lower it). @default NEWHOST_POW_BITS */
  powBits?: number;
  /** @default Date.now */
  now?: () => number;
}

/** The node's own class, as last measured (DESIGN §6; only Public/FullC nodes serve, STUN2 seed §组网 注). */
export interface OwnNatClass {
  nat: NatClassName;
  label: NatLabel;
  certain: boolean;
  /** Our IP as the peers saw it (the probe socket's port says nothing about the service port). */
  publicIp: string | null;
  /** Date.now() of the measurement. */
  checkedAt: number;
  servers: string[];
}

export interface NatService {
  start(): Promise<void>;
  /** Idempotent: ends sessions, timers and sockets, aborts a self-probe in progress. */
  stop(): Promise<void>;
  /** An "sn" datagram that reached the shared socket (hellos; anything else is counted and dropped). */
  handleDatagram(buf: Uint8Array, rinfo: RawDatagramInfo): void;
  /** The node's own class; null until a self-probe concluded. The mesh record should advertise it. */
  ownClass(): OwnNatClass | null;
  /** Called when the own class changes (first result included), e.g. to rebuild the node record. */
  onOwnClass(cb: (own: OwnNatClass) => void): () => void;
  /** Runs the self-probe now (also what the timer does). Null when fewer than 2 peers are known. */
  probeSelf(): Promise<ProbeReport | null>;
  status(): Record<string, unknown>;
  counters(): Record<string, number>;
}

/** Other addresses on the interface that holds `mainIp`, same family (NewHost from a secondary IP). Only that
 *  interface: an address elsewhere (a container bridge, a private LAN) may not route to the target at all, and a
 *  probe that cannot arrive would turn a full cone into a restricted one. */
function secondaryIps(mainIp: string | null): string[] {
  if (mainIp === null) return [];
  for (const list of Object.values(networkInterfaces())) {
    const addrs = (list ?? []).map((a) => ({ ip: normalizeIp(a.address), family: a.family }));
    const main = addrs.find((a) => a.ip === mainIp);
    if (!main) continue;
    return addrs.filter((a) => a.family === main.family && a.ip !== mainIp && !a.ip.startsWith("fe80")).map((a) => a.ip);
  }
  return [];
}

function isWildcard(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || isIP(host) === 0;
}

function shuffle<T>(xs: T[]): T[] {
  for (let i = xs.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [xs[i], xs[j]] = [xs[j]!, xs[i]!];
  }
  return xs;
}

export function createNatService(components: NatServiceComponents, init: NatServiceInit): NatService {
  const { udp, mesh, nodeKey } = components;
  const log = components.log;
  const now = init.now ?? Date.now;
  const mainIp = isWildcard(init.host) ? null : normalizeIp(init.host);
  const ownIps = init.ownIps ?? (() => ({ main: mainIp, others: secondaryIps(mainIp) }));
  const knownServers =
    components.knownServers ?? (() => mesh.links().filter((l) => l.isOpen && l.trust === "mesh").map((l) => ({ ip: normalizeIp(l.remote.ip), port: l.remote.port })));
  const counters = { unknownDatagrams: 0, newHostOrdersSent: 0, newHostOrdersFailed: 0, selfProbes: 0 };
  let own: OwnNatClass | null = null;
  const ownListeners = new Set<(own: OwnNatClass) => void>();
  let lastSelfError: string | null = null;
  let state: "new" | "running" | "stopped" = "new";
  let selfTimer: ReturnType<typeof setTimeout> | undefined;
  let selfAbort = new AbortController();
  let selfRunning: Promise<ProbeReport | null> | null = null;

  const contacts = new RecentContacts();
  const sendMain = (bytes: Uint8Array, to: Endpoint) => {
    contacts.touch(to.ip, now());
    return udp.sendRaw(bytes, to.port, to.ip);
  };

  /** Sends from `fromIp` through a one-use socket, or from the shared socket when that is our main IP (or none). */
  async function sendFrom(bytes: Uint8Array, target: Endpoint, fromIp: string | null): Promise<void> {
    if (fromIp === null || fromIp === mainIp) return sendMain(bytes, target);
    const sock = createSocket(isIP(fromIp) === 6 ? "udp6" : "udp4");
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once("error", reject);
        sock.bind(0, fromIp, () => resolve());
      });
      await new Promise<void>((resolve, reject) => sock.send(bytes, target.port, target.ip, (err) => (err ? reject(err) : resolve())));
    } finally {
      sock.close();
    }
  }

  /** Consent tokens this node hands clients over HTTPS and checks in the orders it gets as a delegate. */
  const consent = createConsentIssuer({ now });
  const delegate: NewHostDelegate = createNewHostDelegate(
    {
      nodeKey,
      sendFrom,
      ownIps,
      // On a wildcard address the kernel picks the source: the route to the target tells which IP that is.
      sourceIpFor: (target) => routeSourceIp(target).catch(() => null),
      consent,
      log,
    },
    { now, allowSpecialTargets: init.allowSpecialTargets },
  );

  /** The NewHost fan-out of a formal step: up to MAX_DELEGATES helpers, NAT'd members of our findings pool first,
   *  then mesh peers, those outside the client's avoid list first, never a peer on the target's IP (it would probe
   *  itself) nor one on ours. */
  async function delegateNewHost(req: NewHostRequest, signal?: AbortSignal): Promise<DelegateOutcome[]> {
    const avoid = new Set(req.avoidIps.map(normalizeIp));
    const members = shuffle(usableMembers(components.natdMembers?.() ?? [], req.target, avoid, mainIp)).slice(0, MAX_DELEGATES);
    // Only peers the client asked itself: each checks its own consent token, so no other peer would send.
    const candidates = mesh
      .links()
      .filter((l) => l.isOpen && l.trust === "mesh" && l.peerKey !== null && req.consents.has(normalizeIp(l.remote.ip)))
      .filter((l) => !sameIp(l.remote.ip, req.target.ip) && !(mainIp && sameIp(l.remote.ip, mainIp)));
    // One link per peer node (a pair of nodes may hold links both ways).
    const byNode = new Map<string, MeshLink>();
    for (const l of candidates) if (!byNode.has(l.peerNodeId!)) byNode.set(l.peerNodeId!, l);
    const all = [...byNode.values()];
    const clean = shuffle(all.filter((l) => !avoid.has(normalizeIp(l.remote.ip))));
    const rest = shuffle(all.filter((l) => avoid.has(normalizeIp(l.remote.ip))));
    const picked = [...clean, ...rest].slice(0, MAX_DELEGATES - members.length);
    const issuedAtMs = BigInt(now());
    const clientConn = sha256(new TextEncoder().encode(req.connectionId));
    const fromMembers = members.map(async (m) => {
      counters.newHostOrdersSent++;
      const r = await orderMemberNewHost(nodeKey, m, { ...req, clientConn, issuedAtMs }, signal);
      if (r.error) counters.newHostOrdersFailed++;
      return r;
    });
    const fromPeers = Promise.all(
      picked.map(async (link): Promise<DelegateOutcome> => {
        const result: DelegateOutcome = { nodeId: link.peerNodeId!, fromIp: "", sent: 0, error: "" };
        try {
          const payload = sealNewHostOrder(nodeKey.privateKey, link.peerKey!, {
            targetIp: req.target.ip,
            targetPort: req.target.port,
            hostKey: req.hostKey,
            issuedAtMs,
            orderId: crypto.getRandomValues(new Uint8Array(NEWHOST_ORDER_ID_BYTES)),
            avoidIps: req.avoidIps,
            proof: req.proof,
            clientConn,
            consent: req.consents.get(normalizeIp(link.remote.ip)),
          });
          counters.newHostOrdersSent++;
          const ans = await link.request(METHOD.nat.newHost, payload, { timeoutMs: DELEGATE_TIMEOUT_MS, signal });
          if (ans.status !== Status.OK) {
            counters.newHostOrdersFailed++;
            result.error = ans.error || `status ${ans.status}`;
            return result;
          }
          const report = decodeMessage(NewHostReportSchema, ans.payload, "NewHostReport", 512);
          result.sent = report.sent;
          result.fromIp = report.fromIp;
          return result;
        } catch (err) {
          counters.newHostOrdersFailed++;
          result.error = errorLine(err);
          return result;
        }
      }),
    );
    const outcomes = await Promise.all([Promise.all(fromMembers), fromPeers]);
    return outcomes.flat();
  }

  const cone = createConeServer({ sendMain, delegate: delegateNewHost, log }, { bindHost: isWildcard(init.host) ? (isIP(init.host) === 6 || init.host === "::" ? "::" : "0.0.0.0") : init.host, now, powBits: init.powBits });
  const live = createLifetimeServer({ send: (bytes, to) => void sendMain(bytes, to).catch(() => {}), log }, { now });

  const routes = natRoutes({ cone, live, delegate, knownServers, serving: init.serve !== false });
  let removeRoutes: Array<() => void> = [];
  const offLinks = trackLinks(udp, contacts, now);
  const offClose = udp.on("close", (link) => {
    cone.dropConnection(link.connectionId);
    live.dropConnection(link.connectionId);
  });

  async function probeSelf(): Promise<ProbeReport | null> {
    if (selfRunning) return selfRunning;
    // Peers our socket talked to lately go first: they serve the pre-probe, and the one left out is then likely
    // one whose NewHost probe can count (its IP must not be in `contacted`).
    const contacted = contacts.list(now());
    const contactedSet = new Set(contacted);
    const recent = (s: Endpoint) => contactedSet.has(normalizeIp(s.ip));
    const others = shuffle(knownServers().filter((s) => !(mainIp && sameIp(s.ip, mainIp))));
    const peers = [...others.filter(recent), ...others.filter((s) => !recent(s))];
    if (new Set(peers.map((s) => s.ip)).size < 2) {
      lastSelfError = `${peers.length} peer(s) known; a self-probe needs 2 on distinct IPs`;
      return null;
    }
    // Pre-probe at most 3 peers and, with 3 or more, leave at least one out: NewHost only counts from an IP the
    // prober never talks to (source-check.ts R4), so a peer we did not contact is the one that can prove it.
    const servers = peers.slice(0, peers.length >= 3 ? Math.min(3, peers.length - 1) : peers.length);
    const opts: ProbeOptions = { servers, timeoutMs: init.probeTimeoutMs, minServers: 2, signal: selfAbort.signal, localIp: mainIp ?? undefined, contactedIps: contacted };
    selfRunning = (async () => {
      counters.selfProbes++;
      const probeTimer = components.selfProbeSeconds?.startTimer();
      try {
        const r = await runProbe(opts);
        probeTimer?.({ nat_class: r.nat ?? "none" });
        const decision = r.evidence.find((e) => e.test === "decision");
        if (r.nat !== null) {
          const before = own;
          own = {
            nat: r.nat,
            label: natLabel(r.nat),
            certain: decision?.certain === true,
            publicIp: r.publicAddress ? r.publicAddress.replace(/^\[?(.*?)\]?:\d+$/, "$1") : null,
            checkedAt: now(),
            servers: r.servers,
          };
          lastSelfError = null;
          log?.info("own NAT class measured", { nat: r.nat, certain: own.certain, publicIp: own.publicIp, elapsedMs: r.elapsedMs });
          if (!before || before.nat !== own.nat || before.certain !== own.certain || before.publicIp !== own.publicIp) {
            for (const cb of ownListeners) {
              try {
                cb(own);
              } catch (err) {
                log?.warn("own-class listener failed", { error: errorLine(err) });
              }
            }
          }
        } else {
          lastSelfError = String(decision?.reason ?? "no class");
        }
        return r;
      } catch (err) {
        lastSelfError = errorLine(err);
        log?.debug("self-probe failed", { error: lastSelfError });
        return null;
      } finally {
        selfRunning = null;
      }
    })();
    return selfRunning;
  }

  function scheduleSelf(ms: number): void {
    if (state !== "running" || init.selfProbe === false) return;
    clearTimeout(selfTimer);
    selfTimer = setTimeout(async () => {
      const r = await probeSelf();
      const ok = r !== null && r.nat !== null && own !== null && own.certain;
      scheduleSelf(ok ? (init.selfProbeIntervalMs ?? SELF_PROBE_INTERVAL_MS) : (init.selfProbeRetryMs ?? SELF_PROBE_RETRY_MS));
    }, ms);
  }

  return {
    async start() {
      if (state !== "new") return;
      state = "running";
      removeRoutes = [udp.router.addAll(routes.quic), mesh.router.addAll(routes.wss)];
      const https = components.https;
      if (https && init.serve !== false) {
        https.add("GET", NEWHOST_CONSENT_PATH, consentRoute(consent));
        removeRoutes.push(() => https.remove("GET", NEWHOST_CONSENT_PATH));
      }
      selfAbort = new AbortController();
      scheduleSelf(init.selfProbeRetryMs ?? SELF_PROBE_RETRY_MS);
    },
    async stop() {
      if (state === "stopped") return;
      state = "stopped";
      clearTimeout(selfTimer);
      selfAbort.abort(new Error("the node is stopping"));
      for (const remove of removeRoutes) remove();
      offLinks();
      offClose();
      cone.stop();
      live.stop();
      await selfRunning?.catch(() => null);
    },
    handleDatagram(buf, rinfo) {
      const token = controlToken(buf);
      if (!token) {
        counters.unknownDatagrams++;
        return;
      }
      const hex = bytesToHex(token);
      const key = cone.keyOf(hex) ?? live.keyOf(hex);
      if (!key) {
        counters.unknownDatagrams++;
        return;
      }
      const d = decodeControl(buf, key);
      const from = { ip: normalizeIp(rinfo.address), port: rinfo.port };
      if (!d.ok) {
        counters.unknownDatagrams++;
        return;
      }
      if (d.msg.type === "hello-formal") cone.hello(d.msg, from);
      else if (d.msg.type === "hello-live") live.hello(d.msg, from);
      else counters.unknownDatagrams++;
    },
    ownClass: () => own,
    onOwnClass(cb) {
      ownListeners.add(cb);
      return () => ownListeners.delete(cb);
    },
    probeSelf,
    status() {
      return {
        own,
        lastSelfProbeError: lastSelfError,
        nodeId: nodeIdOf(nodeKey.publicKey).slice(0, 16),
        coneSessions: cone.active,
        liveSessions: live.active,
      };
    },
    counters() {
      return {
        ...counters,
        cone_sessions: cone.counters.sessions,
        cone_passage_probes: cone.counters.passageProbes,
        cone_newport_probes: cone.counters.newPortProbes,
        cone_formal_steps: cone.counters.formalSteps,
        cone_refused: cone.counters.refused,
        cone_foreign_hellos: cone.counters.foreignHellos,
        live_sessions: live.counters.sessions,
        live_probes: live.counters.probesSent,
        live_refused: live.counters.refused,
        live_foreign_hellos: live.counters.foreignHellos,
        newhost_accepted: delegate.counters.accepted,
        newhost_refused: delegate.counters.refused,
        newhost_rate_limited: delegate.counters.rateLimited,
        newhost_probes: delegate.counters.probesSent,
      };
    },
  };
}
