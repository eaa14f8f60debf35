// The composition root: builds a Findings node from its configuration and wires the rooms together. The
// rooms run as one list of services (transport → mesh → nat → punch → share → ops), started in order and
// stopped in reverse; a failed start stops what had started (contracts/service.ts).
import { isIP } from "node:net";
import type { Config } from "./config/index.ts";
import { createRunCertificate, type RunCertificate } from "./identity/index.ts";
import { loadOrCreateNodeKey, type NodeKey } from "./identity/index.ts";
import { serveAppBootstrapOverWss } from "./transport/index.ts";
import { createMeshLinks, type MeshLinks } from "./mesh/index.ts";
import { createMeshService, type MeshService } from "./mesh/index.ts";
import { createAdminService } from "./ops/index.ts";
import { registerNodeMetrics, registerNodeTimers } from "./ops/index.ts";
import { registerProcessMetrics } from "./ops/index.ts";
import type { Logger } from "./contracts/index.ts";
import { createMetricsRegistry, type MetricsRegistry } from "./contracts/index.ts";
import { asService, createServiceGroup, type Service } from "./contracts/index.ts";
import { createBindingResponder, type BindingResponder } from "./stun/index.ts";
import { createNatService, type NatService } from "./nat/index.ts";
import { createPunchService, type PunchService } from "./punch/index.ts";
import { createShareService, type ShareService } from "./share/index.ts";
import { bootstrapStake, servedKinds } from "./punch/index.ts";
import { formatAddress, parseAddress } from "./contracts/index.ts";
import { createRouter } from "./rpc/index.ts";
import { createTlsEndpoint, type TlsEndpoint } from "./transport/index.ts";
import { createUdpEndpoint, type UdpEndpoint } from "./transport/index.ts";
import { VERSION } from "./version.ts";
import { createNatdService, natdKind, withNetworkKind, type NatdService } from "./natd/index.ts";

export interface NodeComponents {
  config: Config;
  home: string;
  log: Logger;
}

export interface FindingsNode {
  readonly key: NodeKey;
  readonly cert: RunCertificate;
  readonly udp: UdpEndpoint;
  readonly tls: TlsEndpoint;
  readonly mesh: MeshLinks;
  /** Pools, peer sharing, bans, search. */
  readonly meshService: MeshService;
  /** NAT class and lifetime tests, NewHost delegation, own NAT class. */
  readonly nat: NatService;
  /** App pool, punch brokering, signalling coordination. */
  readonly punch: PunchService;
  /** TCP server registry, the share pool. */
  readonly share: ShareService;
  /** Behind NAT: membership in a public node's findings:<network> pool and punched links to NAT'd nodes. */
  readonly natd: NatdService;
  /** Admin URL once started, if the admin endpoint is on. */
  readonly adminUrl: string | undefined;
  /** What /metrics renders. */
  readonly metrics: MetricsRegistry;
  /** Starts every service in order; when one fails, the started ones are stopped in reverse and the
   *  error is rethrown (the node is then stopped for good). */
  start(): Promise<void>;
  /** Idempotent: stops the services in reverse; flushes nothing itself (the caller closes the logger). */
  stop(): Promise<void>;
  status(): Record<string, unknown>;
  counters(): Record<string, number>;
}

export async function createNode({ config, home, log }: NodeComponents): Promise<FindingsNode> {
  const key = loadOrCreateNodeKey(home);
  const cert = await createRunCertificate();
  const startedAt = Date.now();
  const stun: BindingResponder | undefined = config.stun_on ? createBindingResponder({ budget: { ratePerS: config.stun_rate_per_s, burst: config.stun_burst } }) : undefined;
  const idleTimeoutMs = config.idle_timeout_s * 1000;
  const metrics = createMetricsRegistry();
  // Every node of a network serves its NAT'd nodes as apps of kind findings:<network> (seed 001 §应用池); a
  // protocol fact, so the record does not advertise it.
  const stakes = withNetworkKind(config.stakes, config.network);
  const timers = registerNodeTimers(metrics);

  // Raw replies join the shared socket's send queue, sent once per event-loop turn in one sendMany (the
  // responder hands over a fresh buffer); a failing send is counted by the socket, never thrown.
  let udp: UdpEndpoint;
  const send = (bytes: Uint8Array, port: number, ip: string) => udp.sendRawNow(bytes, port, ip);
  // One router serves QUIC streams and WSS links: every method's policy and refusal counts in one place.
  const router = createRouter({
    log: log.child({ room: "rpc" }),
    requestSeconds: metrics.histogram({
      name: "findings_rpc_request_duration_seconds",
      help: "Time request handlers took (requests that passed their method's policy), by method and transport.",
      labelNames: ["method", "transport"],
    }),
  });
  // Every accepted app connection learns the node's reward address for its kind and its identity id.
  const greeting = (kind: string) => bootstrapStake(kind, { stakes: config.stakes, userId: config.user_id, nodeId: key.nodeId });
  udp = createUdpEndpoint(
    {
      cert,
      nodeKey: key,
      log: log.child({ room: "udp" }),
      router,
      greeting,
    },
    {
      host: config.host,
      port: config.server_uport,
      maxConnections: config.max_quic_connections,
      maxHandshakes: config.max_quic_handshakes,
      maxConnectionsPerIp: config.max_conns_per_ip,
      idleTimeoutMs,
      onRawDatagram: (buf, rinfo, kind) => {
        if (kind === "stun" && stun) stun.handle(buf, rinfo.address, rinfo.port, rinfo.family === "IPv6" ? 6 : 4, send);
        else if (kind === "sn") nat.handleDatagram(buf, rinfo);
      },
    },
  );
  const tls = createTlsEndpoint(
    { cert, log: log.child({ room: "tls" }) },
    {
      host: config.host,
      port: config.server_tport,
      maxConnectionsPerIp: config.max_conns_per_ip,
      maxLinks: config.max_mesh_links,
      maxLinksPerIp: config.max_links_per_ip,
      idleTimeoutMs,
    },
  );
  const mesh = createMeshLinks({ tls, cert, nodeKey: key, log: log.child({ room: "mesh" }), router }, { allowSpecialTargets: config.allow_special_targets });
  // Apps without UDP bootstrap over WSS the same way as over QUIC, and may ask whoami there.
  let stopAppWss: (() => void) | undefined;
  const appWss: Service = {
    name: "app-bootstrap-wss",
    start: async () => void (stopAppWss = serveAppBootstrapOverWss({ links: mesh, nodeKey: key, cert, greeting })),
    stop: async () => stopAppWss?.(),
  };

  // NAT services (DESIGN §6): QUIC handlers on udp, NewHost on the mesh, the own-class self-probe.
  const nat = createNatService(
    {
      udp,
      mesh,
      https: tls.routes,
      nodeKey: key,
      log: log.child({ room: "nat" }),
      selfProbeSeconds: timers.selfProbeSeconds,
      natdMembers: () => natd.members(),
      // Mesh peers; a node without mesh links (behind NAT) probes itself through the public nodes it knows.
      knownServers: () => {
        const linked = mesh.links().filter((l) => l.isOpen && l.trust === "mesh").map((l) => ({ ip: l.remote.ip, port: l.remote.port }));
        if (linked.length) return linked;
        return meshService.candidates().flatMap((r) => r.addresses.filter((a) => a.udpPort !== 0).slice(0, 1).map((a) => ({ ip: a.ip, port: a.udpPort })));
      },
    },
    { host: config.host, probeTimeoutMs: config.probe_timeout_s * 1000, serve: !config.client_only, allowSpecialTargets: config.allow_special_targets },
  );

  const meshService = createMeshService(
    {
      links: mesh,
      udp,
      tcpPort: () => tls.port,
      nodeKey: key,
      cert,
      log,
      home,
      ownNat: { current: () => nat.ownClass()?.nat ?? null, onChange: (cb) => nat.onOwnClass(() => cb()) },
    },
    {
      host: config.host,
      advertise: config.advertise.split(",").map((ip) => ip.trim()).filter(Boolean),
      peers: config.peers,
      public: config.public,
      clientOnly: config.client_only,
      shortlist: config.shortlist,
      meshOut: config.mesh_out,
      meshIn: config.mesh_in,
      meshPerPrefix: config.mesh_per_prefix,
      candidatesPerPrefix: config.candidates_per_prefix,
      switchIntervalMs: config.mesh_switch_s * 1000,
      peersHelp: config.peers_help,
      shareCount: config.mesh_share,
      peerCacheMaxAgeMs: config.peer_cache_days * 86_400_000,
      recordMaxAgeMs: config.record_max_age_s * 1000,
      recordResignMs: config.record_resign_s * 1000,
      stakes: config.stakes,
      identityId: config.user_id,
    },
  );

  // App services (DESIGN §5, §7): app pool + punch brokering, TCP server registry; kinds = [stakes] keys.
  const punch = createPunchService(
    {
      udp,
      nodeKey: key,
      log: log.child({ room: "punch" }),
      brokered: metrics.counter({ name: "findings_punch_brokered_total", help: "Punches brokered, by the strategy chosen for the pair.", labelNames: ["strategy"] }),
      brokerSeconds: timers.brokerSeconds,
      // A NAT'd node joined our findings pool: it tells us the public nodes it knows (seed 001 §组网节点 注).
      onMember: (member, link) => {
        if (member.kind === natdKind(config.network) && meshService.role === "service") {
          natd.addMember(link, member.nodeId);
          void natd.askMember(link, member.nodeId);
        }
      },
    },
    {
      stakes,
      userId: config.user_id,
      punchXpool: config.punch_xpool,
      peersPunch: config.peers_punch,
      perConnection: config.punch_per_conn,
      perPrefix: config.punch_per_prefix,
      livenessMs: config.punch_liveness_s * 1000,
      sprayNatCones: config.punch_spray_nat_cones,
    },
  );
  const natd = createNatdService(
    { nodeKey: key, mesh: meshService, ownNat: () => nat.ownClass()?.nat ?? null, log: log.child({ room: "natd" }) },
    {
      network: config.network,
      links: config.natd_links,
      allowSpecialTargets: config.allow_special_targets,
      shareCount: config.mesh_share,
      host: config.host,
      preferIps: config.peers.flatMap((p) => {
        try {
          return [parseAddress(p).ip];
        } catch {
          return [];
        }
      }),
    },
  );
  // The share registry serves apps over QUIC and WSS, and searches the mesh for other nodes' servers.
  const share = createShareService(
    {
      udp,
      log: log.child({ room: "share" }),
      mesh: {
        router: mesh.router,
        nodeKey: key,
        links: () => meshService.meshLinks(),
        ownRecord: () => meshService.record(),
        onLie: (link, why) => meshService.punishLiar(link, why),
        recordMaxAgeMs: config.record_max_age_s * 1000,
      },
    },
    { kinds: servedKinds(config.stakes), capacity: config.share_xpool, allowSpecialTargets: config.allow_special_targets },
  );

  registerNodeMetrics(metrics, { udp, tls, mesh, meshService, nat, punch, share, stun, router });
  const processMetrics = registerProcessMetrics(metrics);

  // The start order; stop runs it backwards. Adding a service is one entry here.
  const admin = config.admin ? createAdminService({ status: () => node.status(), metrics, samplers: [processMetrics] }, config.admin) : undefined;
  const services: Service[] = [
    asService("udp", udp),
    asService("tls", tls),
    asService("mesh-links", mesh),
    appWss,
    asService("mesh", meshService),
    asService("nat", nat),
    asService("punch", punch),
    asService("share", share),
    asService("natd", natd),
    ...(admin ? [admin] : []),
  ];
  const group = createServiceGroup("node", services, { log });
  let state: "new" | "running" | "stopped" = "new";

  const node: FindingsNode = {
    key,
    cert,
    udp,
    tls,
    mesh,
    meshService,
    nat,
    punch,
    share,
    natd,
    metrics,
    get adminUrl() {
      return admin?.url;
    },
    async start() {
      if (state !== "new") return;
      state = "running";
      try {
        await group.start();
      } catch (err) {
        state = "stopped";
        throw err;
      }
      log.info("node started", {
        id: key.nodeId,
        udp: formatAddress(config.host, udp.port),
        tcp: formatAddress(config.host, tls.port),
        admin: admin?.url ?? "off",
        spki: cert.spki,
      });
    },
    async stop() {
      if (state !== "running") {
        state = "stopped";
        return;
      }
      state = "stopped";
      await group.stop();
      log.info("node stopped");
    },
    status() {
      return {
        version: VERSION,
        uptimeMs: Date.now() - startedAt,
        node: {
          id: key.nodeId,
          publicKey: key.publicKeyHex,
          spki: cert.spki,
          udp: formatAddress(config.host, udp.port),
          tcp: formatAddress(config.host, tls.port),
          role: config.client_only ? "client-only" : config.public ? "public" : "service",
          nat: nat.ownClass()?.nat ?? null,
        },
        nat: nat.status(),
        mesh: meshService.status(),
        punch: { ...punch.status(), share: share.pool.counts() },
        natd: natd.status(),
        counters: node.counters(),
        rpc: router.stats(),
      };
    },
    counters() {
      const out: Record<string, number> = {};
      for (const [k, v] of Object.entries(udp.counters())) if (typeof v === "number") out[`udp_${k}`] = v;
      for (const [k, v] of Object.entries(tls.counts())) if (typeof v === "number") out[`tls_${k}`] = v;
      out.mesh_links = mesh.links().length;
      Object.assign(out, router.counters());
      Object.assign(out, meshService.counters());
      for (const [k, v] of Object.entries(nat.counters())) out[`nat_${k}`] = v;
      for (const [k, v] of Object.entries(punch.counters())) out[`punch_${k}`] = v;
      for (const [k, v] of Object.entries(share.counters())) out[`share_${k}`] = v;
      for (const [k, v] of Object.entries(natd.counters())) out[`natd_${k}`] = v;
      if (stun) Object.assign(out, { stun_answered: stun.answered, stun_malformed: stun.malformed, stun_ignored: stun.ignored, stun_limited: stun.limited });
      return out;
    },
  };
  return node;
}

/** Whether `host` binds every address (then the advertised address must come from elsewhere). */
export function isWildcardHost(host: string): boolean {
  return host === "0.0.0.0" || host === "::" || isIP(host) === 0;
}
