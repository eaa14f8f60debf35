// The node's /metrics families: each room's own counters, read at scrape time and named by the Prometheus
// conventions (findings_<room>_<what>[_<unit>], _total on counters, labels instead of glued names).
import { LATENCY_BUCKETS_SECONDS, type Histogram, type LabelValues, type MetricsRegistry } from "../contracts/index.ts";
import type { MeshLinks } from "../mesh/index.ts";
import type { MeshService, MeshServiceStatus } from "../mesh/index.ts";
import type { NatService } from "../nat/index.ts";
import type { PunchService } from "../punch/index.ts";
import type { Router } from "../rpc/index.ts";
import type { ShareService } from "../share/index.ts";
import type { BindingResponder } from "../stun/index.ts";
import type { TlsEndpoint } from "../transport/index.ts";
import type { UdpEndpoint } from "../transport/index.ts";

export interface NodeMetricSources {
  udp: Pick<UdpEndpoint, "counters">;
  tls: Pick<TlsEndpoint, "counts">;
  mesh: Pick<MeshLinks, "links">;
  meshService: Pick<MeshService, "counters" | "status">;
  nat: Pick<NatService, "counters" | "ownClass">;
  punch: Pick<PunchService, "counters" | "pool">;
  share: Pick<ShareService, "counters" | "pool">;
  stun?: BindingResponder;
  router: Pick<Router, "stats">;
}

type Sample<L extends string> = [LabelValues<L>, number];

/** Self-probe durations in seconds: a certain answer comes in 1–3 s, an uncertain one also waits out
 *  probe_timeout_s (6 s by default) for negative answers. */
const SELF_PROBE_BUCKETS_SECONDS: readonly number[] = [0.25, 0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 60];

/** The histograms the services observe themselves, through hooks in their components. */
export interface NodeTimers {
  /** nat: each self-probe, by the class it found. */
  selfProbeSeconds: Histogram<"nat_class">;
  /** punch: punch.request to the target's acknowledged offer, by strategy. */
  brokerSeconds: Histogram<"strategy">;
}

export function registerNodeTimers(registry: MetricsRegistry): NodeTimers {
  return {
    selfProbeSeconds: registry.histogram({
      name: "findings_nat_self_probe_seconds",
      help: "Time each self-probe of this node's own NAT class took, by the class it found (none = no class).",
      labelNames: ["nat_class"],
      buckets: SELF_PROBE_BUCKETS_SECONDS,
    }),
    brokerSeconds: registry.histogram({
      name: "findings_punch_broker_seconds",
      help: "Time from a punch.request to its offer acknowledged by the target app, by the strategy chosen.",
      labelNames: ["strategy"],
      buckets: LATENCY_BUCKETS_SECONDS,
    }),
  };
}

/** Registers every node family on `registry`; values are read from `sources` at each render. */
export function registerNodeMetrics(registry: MetricsRegistry, sources: NodeMetricSources): void {
  const { udp, tls, mesh, meshService, nat, punch, share, stun, router } = sources;
  const counter = <L extends string = never>(name: string, help: string, labelNames: readonly L[], read: () => Sample<L>[]) =>
    registry.counter<L>({ name, help, labelNames, collect: (emit) => read().forEach(([labels, v]) => emit(labels, v)) });
  const gauge = <L extends string = never>(name: string, help: string, labelNames: readonly L[], read: () => Sample<L>[]) =>
    registry.gauge<L>({ name, help, labelNames, collect: (emit) => read().forEach(([labels, v]) => emit(labels, v)) });
  const one = (v: number): Sample<never>[] => [[{}, v]];
  // One status() per render: a render is synchronous, so the snapshot is dropped at the next microtask.
  let meshStatus: MeshServiceStatus | undefined;
  const meshCounters = () => {
    if (!meshStatus) {
      meshStatus = meshService.status();
      queueMicrotask(() => (meshStatus = undefined));
    }
    return meshStatus.counters;
  };
  const meshEvent = (name: string) => meshCounters().events[name] ?? 0;

  // UDP socket and QUIC (transport/udp, transport/quic).
  const u = () => udp.counters();
  counter("findings_udp_datagrams_total", "Datagrams received on the shared UDP socket, by the handler they went to (raw = STUN or SN probe).", ["kind"], () => [
    [{ kind: "quic" }, u().quicDatagrams],
    [{ kind: "raw" }, u().rawDatagrams],
    [{ kind: "unknown" }, u().unknownDatagrams],
  ]);
  counter("findings_udp_datagrams_dropped_total", "Datagrams dropped: new QUIC handshakes over the connection table or the handshakes-in-progress cap, resent Initials of a handshake in progress, or a handler that threw.", ["reason"], () => [
    [{ reason: "handshake_limit" }, u().droppedInitials],
    [{ reason: "handshakes_in_progress" }, u().handshakesDropped],
    [{ reason: "duplicate_initial" }, u().duplicateInitials],
    [{ reason: "handler_error" }, u().datagramErrors],
  ]);
  counter("findings_udp_socket_errors_total", "Error events of the UDP socket (e.g. ICMP port unreachable), counted, not fatal.", [], () => one(u().socketErrors));
  counter("findings_udp_sends_dropped_total", "Datagrams not sent because the send queue was full while the kernel's buffer was.", [], () => one(u().sendsDropped));
  counter("findings_quic_connections_total", "QUIC connections opened, inbound and dialled.", [], () => one(u().connections));
  gauge("findings_quic_inbound_connections", "Inbound QUIC connections open now.", [], () => one(u().activeConnections));
  counter("findings_quic_dial_failures_total", "Outbound QUIC dials that failed: certificate pin mismatch or any other reason.", ["reason"], () => [
    [{ reason: "pin_mismatch" }, u().pinMismatches],
    [{ reason: "other" }, u().dialFailures],
  ]);
  counter("findings_quic_streams_total", "Peer-opened QUIC request streams and request channels served, whatever their outcome.", [], () => one(u().streams));
  counter("findings_quic_requests_total", "QUIC requests read (one per request stream, one per frame of a request channel), whatever their outcome.", [], () => one(u().requests));
  counter(
    "findings_quic_streams_failed_total",
    "QUIC requests not answered normally: over a size or connection limit (limit), undecodable or unknown method, or timed out (handler failures: findings_rpc_handler_failures_total).",
    ["reason"],
    () => [
      [{ reason: "limit" }, u().refusedLimits],
      [{ reason: "bad_request" }, u().badRequests],
      [{ reason: "timeout" }, u().streamTimeouts],
    ],
  );

  // Request router (rpc): both transports, by method.
  const r = () => router.stats();
  counter("findings_rpc_requests_total", "Requests that passed their method's policy and reached the handler, by method.", ["method"], () =>
    Object.entries(r().calls).map(([method, n]) => [{ method }, n]),
  );
  counter("findings_rpc_refused_total", "Requests refused by their method's policy, by method and reason (unknown methods under method=\"*\").", ["method", "reason"], () =>
    Object.entries(r().refused).flatMap(([method, byReason]) => Object.entries(byReason).map(([reason, n]): Sample<"method" | "reason"> => [{ method, reason: reason.replace("-", "_") }, n ?? 0])),
  );
  counter("findings_rpc_handler_failures_total", "Handlers that threw an unexpected error (answered INTERNAL), by method.", ["method"], () =>
    Object.entries(r().failed).map(([method, n]) => [{ method }, n]),
  );

  // TLS port (transport/tls).
  gauge("findings_tls_connections", "TCP connections open on the TLS port now.", [], () => one(tls.counts().connections));
  gauge("findings_tls_websocket_links", "WebSocket links open on the TLS port now.", [], () => one(tls.counts().links));
  counter("findings_tls_handshake_errors_total", "TLS handshakes that failed.", [], () => one(tls.counts().tlsErrors));
  counter("findings_tls_upgrades_refused_total", "WebSocket upgrades refused (bad request, unknown path, link limits).", [], () => one(tls.counts().refusedUpgrades));
  counter("findings_tls_connections_rate_limited_total", "TCP connections dropped before the TLS handshake by the per-host or per-/24 connection rate.", [], () => one(tls.counts().refusedRate));

  // STUN Binding responder (stun).
  if (stun) {
    counter("findings_stun_datagrams_total", "STUN datagrams handled, by result (ignored = well-formed but not for us).", ["result"], () => [
      [{ result: "answered" }, stun.answered],
      [{ result: "malformed" }, stun.malformed],
      [{ result: "ignored" }, stun.ignored],
      [{ result: "unanswered" }, stun.unanswered],
    ]);
  }

  // Mesh (mesh): links, candidates, bans, messages by method, record checks.
  const m = () => meshService.counters();
  gauge("findings_mesh_connections", "Mesh WebSocket connections open now, pooled or not (first-contact help included).", [], () => one(mesh.links().length));
  gauge("findings_mesh_links", "Pooled mesh links open now, by direction.", ["direction"], () => [
    [{ direction: "out" }, m().mesh_links_out ?? 0],
    [{ direction: "in" }, m().mesh_links_in ?? 0],
  ]);
  gauge("findings_mesh_candidates", "Known peers that could become mesh links.", [], () => one(m().mesh_candidates ?? 0));
  gauge("findings_mesh_bans", "Bans in force.", [], () => one(m().mesh_bans ?? 0));
  counter("findings_mesh_messages_total", "Mesh messages by direction and method.", ["direction", "method"], () => {
    const c = meshCounters();
    return [
      ...Object.entries(c.messagesIn).map(([method, n]): Sample<"direction" | "method"> => [{ direction: "in", method }, n]),
      ...Object.entries(c.messagesOut).map(([method, n]): Sample<"direction" | "method"> => [{ direction: "out", method }, n]),
    ];
  });
  counter("findings_mesh_links_opened_total", "Mesh links added to the pool, by direction.", ["direction"], () => [
    [{ direction: "out" }, meshEvent("linksOut")],
    [{ direction: "in" }, meshEvent("linksIn")],
  ]);
  counter("findings_mesh_links_refused_total", "Mesh links refused: the peer is banned, already linked, or the pool is full.", ["reason"], () => [
    [{ reason: "banned" }, meshEvent("linksRefusedBanned")],
    [{ reason: "duplicate" }, meshEvent("linksDuplicate")],
    [{ reason: "full" }, meshEvent("linksRefusedFull")],
  ]);
  counter("findings_mesh_dials_total", "Mesh dials to candidates, by result.", ["result"], () => [
    [{ result: "ok" }, meshEvent("dialsOk")],
    [{ result: "failed" }, meshEvent("dialsFailed")],
  ]);
  counter("findings_mesh_switches_total", "Mesh links swapped for a better candidate.", [], () => one(meshEvent("switches")));
  counter("findings_mesh_bans_issued_total", "Bans this node issued.", [], () => one(meshEvent("bansIssued")));
  counter("findings_mesh_pool_refreshes_total", "Candidate pool refresh rounds.", [], () => one(meshEvent("poolRefreshes")));
  counter("findings_mesh_candidates_dropped_total", "Candidates dropped after failed dials.", [], () => one(meshEvent("candidatesDropped")));
  counter("findings_mesh_help_rounds_total", "Online-help rounds (asking peers for records).", [], () => one(meshEvent("helpRounds")));
  counter("findings_mesh_help_conflicts_total", "Records that disagreed between online-help answers.", [], () => one(meshEvent("helpConflicts")));
  counter("findings_mesh_records_received_total", "Node records received from peers.", [], () => one(meshEvent("recordsReceived")));
  counter("findings_mesh_records_refreshed_total", "Received records that refreshed one already known.", [], () => one(meshEvent("recordsRefreshed")));
  counter("findings_mesh_records_added_total", "Records added or updated after their check passed.", [], () => one(meshEvent("recordsAdded")));
  counter("findings_mesh_records_bad_total", "Received records that failed to decode or verify.", [], () => one(meshEvent("badRecords")));
  counter("findings_mesh_record_checks_total", "Reachability and key checks of received records, by result.", ["result"], () => [
    [{ result: "ok" }, meshEvent("checksOk")],
    [{ result: "key_failed" }, meshEvent("checksKeyFailed")],
    [{ result: "unreachable" }, meshEvent("checksUnreachable")],
  ]);

  // NAT tests (nat, DESIGN §6).
  const n = () => nat.counters();
  gauge("findings_nat_own_class", "This node's NAT class from its self-probe: 1 on the current class (unknown until a probe succeeds).", ["nat_class"], () => [
    [{ nat_class: nat.ownClass()?.nat ?? "unknown" }, 1],
  ]);
  counter("findings_nat_self_probes_total", "Self-probes of this node's own NAT class.", [], () => one(n().selfProbes ?? 0));
  counter("findings_nat_unknown_datagrams_total", "SN datagrams that matched no NAT test session.", [], () => one(n().unknownDatagrams ?? 0));
  counter("findings_nat_sessions_total", "NAT test sessions served, by test.", ["test"], () => [
    [{ test: "cone" }, n().cone_sessions ?? 0],
    [{ test: "lifetime" }, n().live_sessions ?? 0],
  ]);
  counter("findings_nat_probes_sent_total", "NAT test probes sent, by probe.", ["probe"], () => [
    [{ probe: "cone_passage" }, n().cone_passage_probes ?? 0],
    [{ probe: "cone_new_port" }, n().cone_newport_probes ?? 0],
    [{ probe: "lifetime" }, n().live_probes ?? 0],
    [{ probe: "newhost" }, n().newhost_probes ?? 0],
  ]);
  counter("findings_nat_cone_formal_steps_total", "Formal steps of cone tests run.", [], () => one(n().cone_formal_steps ?? 0));
  counter("findings_nat_requests_refused_total", "NAT test requests refused, by test and reason.", ["test", "reason"], () => [
    [{ test: "cone", reason: "refused" }, n().cone_refused ?? 0],
    [{ test: "lifetime", reason: "refused" }, n().live_refused ?? 0],
    [{ test: "newhost", reason: "refused" }, n().newhost_refused ?? 0],
    [{ test: "newhost", reason: "rate_limited" }, n().newhost_rate_limited ?? 0],
  ]);
  counter("findings_nat_foreign_hellos_total", "Test hellos from an address other than the session's.", ["test"], () => [
    [{ test: "cone" }, n().cone_foreign_hellos ?? 0],
    [{ test: "lifetime" }, n().live_foreign_hellos ?? 0],
  ]);
  counter("findings_nat_newhost_accepted_total", "NewHost delegations accepted from peers.", [], () => one(n().newhost_accepted ?? 0));
  counter("findings_nat_newhost_orders_total", "NewHost orders this node sent to peers.", [], () => one(n().newHostOrdersSent ?? 0));
  counter("findings_nat_newhost_orders_failed_total", "NewHost orders that failed.", [], () => one(n().newHostOrdersFailed ?? 0));

  // App pool and punch brokering (punch, DESIGN §5, §7).
  const p = () => punch.counters();
  gauge("findings_punch_pool_members", "Apps in the pool now, by kind and NAT class.", ["kind", "nat_class"], () => {
    const out: Sample<"kind" | "nat_class">[] = [];
    for (const kind of Object.keys(punch.pool.counts())) {
      const byClass = new Map<string, number>();
      for (const member of punch.pool.members(kind)) byClass.set(member.nat ?? "unknown", (byClass.get(member.nat ?? "unknown") ?? 0) + 1);
      for (const [nat_class, count] of byClass) out.push([{ kind, nat_class }, count]);
    }
    return out;
  });
  counter("findings_punch_joins_total", "app.join requests accepted: first joins and rejoins.", ["result"], () => [
    [{ result: "joined" }, p().joins],
    [{ result: "rejoined" }, p().rejoins],
  ]);
  counter("findings_punch_joins_refused_total", "app.join requests refused: the pool is full, or any other reason (bad request, identity, stake, kind).", ["reason"], () => [
    [{ reason: "full" }, p().joinsFull],
    [{ reason: "other" }, p().joinsRefused],
  ]);
  counter("findings_punch_leaves_total", "Apps that left the pool (goodbye, closed connection, failed push).", [], () => one(p().leaves));
  counter("findings_punch_requests_total", "punch.request calls received.", [], () => one(p().punchRequests));
  counter("findings_punch_requests_refused_total", "punch.request calls refused or left without a delivered offer.", [], () => one(p().punchRefused));
  counter("findings_punch_offers_total", "Punch offers pushed to apps, by result.", ["result"], () => [
    [{ result: "pushed" }, p().offersPushed],
    [{ result: "failed" }, p().offersFailed],
  ]);
  counter("findings_punch_rebrokered_total", "Punches brokered again after a member's mapping changed.", [], () => one(p().rebrokered));

  // TCP server registry (share).
  const s = () => share.counters();
  gauge("findings_share_servers", "TCP servers listed now, by kind.", ["kind"], () => Object.entries(share.pool.counts()).map(([kind, v]): Sample<"kind"> => [{ kind }, v]));
  counter("findings_share_registrations_total", "TCP servers registered.", [], () => one(s().registered));
  counter("findings_share_requests_refused_total", "Share requests refused.", [], () => one(s().refused));
  counter("findings_share_dial_failures_total", "Reachability dials to registered servers that failed.", [], () => one(s().dialFailures));
  counter("findings_share_searches_total", "Searches of listed servers through the mesh started for apps.", [], () => one(s().searches));
  counter("findings_share_rechecks_total", "Rechecks of listed servers started.", [], () => one(s().rechecks));
  counter("findings_share_dropped_total", "Listed servers dropped (failed rechecks or too old).", [], () => one(s().dropped));
}
