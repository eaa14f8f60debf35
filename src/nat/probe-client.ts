// `findings probe` as a library call: public address, NAT class with its RFC 4787 axes, and (optionally) the mapping
// lifetime, from a few Findings servers (DESIGN §6; STUN2 seed 000 §提供的服务 1–2). Server side in cone-server.ts.
//
// Steps (numbered as in DESIGN §6), all from this host, each observation fed to decideNat as it arrives; the run
// stops as soon as the answer is certain, else when the timeout (seed: 6 s) runs out:
//   1. pre-probe: one QUIC socket P dials every server (≥ 3 on distinct IPs; with fewer, the first one is asked for
//      more with nat.servers) and asks whoami. Differing mapped addresses → symmetric. The source server (the
//      first that answers, in the given order) also opens a new-port socket: P sends it hello-port and learns the
//      mapping a same-IP/other-port destination gets, which tells the mapping axis apart (RFC 4787 §4.1).
//   2. passage: nat.passage makes the source server send 2 SN probes on P's QUIC 4-tuple. None arriving while QUIC
//      works → quic-only.
//   3. formal: a NEW unconnected socket F sends hello-formal to the source server, whose ack carries F's mapped
//      address and a cookie; the client proves work for that IP and key, and nat.formal (cookie, proof) makes the
//      source send 4 NewPort probes from its new port and ≥ 2 mesh delegates send 3 NewHost probes each.
//      Each probe counts only if its MAC verifies with K (SHA-256(K) for NewHost) and it passes the source rules
//      of source-check.ts; NewHost from an IP this host talks to (any server it knows) never counts (rule R4).
//      When the delegates sent only from such IPs, NewHost was not tested: the step is retried once with the next
//      server as source.
//   Negative answers ("no NewHost", "no NewPort", "no passage") are believed SILENCE_MIN_MS / SILENCE_RTTS after the
//   server confirmed the burst was sent (it left before the confirmation did); the timeout caps everything.
//   No QUIC answer at all → udp-blocked; after TCP_CHECK_AFTER_MS an HTTPS whoami says whether TCP works.
//   4. lifetime (on request): lifetime-client.ts on the source server's link.
import { generateNodeKey } from "../identity/node-key.ts";
import { DEFAULTS } from "../config/defaults.ts";
import { ConfigError, errorLine, PeerError } from "../errors.ts";
import { bootstrapApp } from "../transport/app-bootstrap/bootstrap.ts";
import { httpsWhoami } from "../transport/tls/https-whoami-client.ts";
import { expectOk, type QuicLink } from "../transport/quic/link.ts";
import { WHOAMI_METHOD } from "../transport/quic/whoami-handler.ts";
import { createUdpClient, type UdpClient } from "../transport/udp/client.ts";
import { decodeMessage, encodeMessage } from "../wire/codec.ts";
import { WhoamiResponseSchema } from "../wire/gen/findings_pb.ts";
import { PeersAnswerSchema, PeersRequestSchema } from "../wire/gen/mesh_pb.ts";
// The mesh service's QUIC method for the records a node knows (DESIGN §1 `findings peers`).
import { MESH_PEERS_METHOD } from "../mesh/mesh-service-constants.ts";
import {
  NatBeginAnswerSchema,
  NatBeginRequestSchema,
  NatFormalAnswerSchema,
  NatFormalRequestSchema,
  NatPassageAnswerSchema,
  NatPassageRequestSchema,
  NatServersAnswerSchema,
} from "../wire/gen/nat_pb.ts";
import { buildControl, controlToken, decodeControl } from "./control-packet.ts";
import { measureLifetime } from "./lifetime-client.ts";
import { decideNat, type FormalObservation, type NatDecision, type NatObservations, type PassageObservation } from "./decision.ts";
import {
  HELLO_ATTEMPTS,
  HELLO_RETRY_MS,
  LIFETIME_MAX_S,
  MAX_AVOID_IPS,
  MAX_PRE_PROBE_SERVERS,
  MAX_SERVERS_ANSWER,
  NAT_BEGIN_METHOD,
  NAT_FORMAL_METHOD,
  NAT_PASSAGE_METHOD,
  NAT_SERVERS_METHOD,
  PRE_PROBE_MIN_SERVERS,
  SILENCE_MIN_MS,
  SILENCE_RTTS,
  TCP_CHECK_AFTER_MS,
} from "./constants.ts";
import { makeNewHostProof } from "./newhost-proof.ts";
import { newHostKey, verifyProbe } from "./probe-packet.ts";
import type { LifetimeReport, ProbeEvidence, ProbeReport } from "./probe-report.ts";
import { openProbeSocket, routeSourceIp, type ProbeSocket } from "./probe-sockets.ts";
import { checkProbeSource, formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";
import { isIP } from "node:net";
import type { Logger } from "../contracts/logger.ts";

export interface ProbeServer extends Endpoint {
  /** The server's X25519 key ("#hex" of an address): with it the link is bootstrapped and pinned. */
  publicKey?: Uint8Array;
}

export interface ProbeProgress {
  phase: "start" | "pre-probe" | "passage" | "formal" | "new-host" | "tcp" | "decision" | "lifetime";
  message: string;
  elapsedMs: number;
}

export interface ProbeOptions {
  servers: readonly ProbeServer[];
  /** Also measure the mapping lifetime (takes about the lifetime itself, up to lifetimeMaxS). @default false */
  lifetime?: boolean;
  /** Longest wait for answers that may never come, in ms (seed 000: 6 s). @default probe_timeout_s of defaults.toml */
  timeoutMs?: number;
  signal?: AbortSignal;
  onProgress?: (p: ProbeProgress) => void;
  /** Local IP to probe from. @default the one the kernel routes to the first server from */
  localIp?: string;
  /** Distinct server IPs wanted for the pre-probe; fewer → ask the servers for more. @default PRE_PROBE_MIN_SERVERS */
  minServers?: number;
  /** Longest lifetime delay tried, in seconds. @default 300 */
  lifetimeMaxS?: number;
  /** TCP port for the HTTPS whoami of a server. @default the server's UDP port (DESIGN §2: both 7788) */
  tcpPortOf?: (server: Endpoint) => number;
  log?: Logger;
}

/** Keeps the servers that share the local address family, without duplicates. */
function cleanServers(list: readonly ProbeServer[]): ProbeServer[] {
  const out: ProbeServer[] = [];
  for (const s of list) {
    const ip = normalizeIp(s.ip);
    if (!out.some((o) => o.ip === ip && o.port === s.port)) out.push({ ...s, ip });
  }
  return out;
}

function distinctIps(list: readonly Endpoint[]): number {
  return new Set(list.map((s) => normalizeIp(s.ip))).size;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, Math.max(0, ms)));
}

interface FormalAttempt {
  server: ProbeServer;
  socket: ProbeSocket;
  obs: FormalObservation;
  token: Uint8Array;
  onAck?: (mapped: Endpoint, cookie: Uint8Array) => void;
}

/** Runs the probe. Throws ConfigError when no usable server is given; otherwise always returns a report (a class
 *  of null when no server answered at all). */
export async function runProbe(opts: ProbeOptions): Promise<ProbeReport> {
  return new ProbeRun(opts).run();
}

class ProbeRun {
  private readonly t0 = performance.now();
  private readonly timeoutMs: number;
  private readonly evidence: ProbeEvidence[] = [];
  private readonly key = crypto.getRandomValues(new Uint8Array(32));
  private readonly hostKey = newHostKey(this.key);
  /** Every IP this host talks to (all servers it knows, its own): NewHost from them never counts (rule R4). */
  private readonly contacted = new Set<string>();
  private readonly obs: NatObservations = { localAddress: null, preProbe: [], preProbeFinished: false, udpPath: null, tcpWorks: null, passage: null, formal: null };
  private servers: ProbeServer[];
  private readonly connects = new Map<string, Promise<QuicLink | null>>();
  private readonly links: QuicLink[] = [];
  private readonly attempts: FormalAttempt[] = [];
  private readonly timers: ReturnType<typeof setTimeout>[] = [];
  private readonly stop = new AbortController();
  private readonly signal: AbortSignal;
  private client: UdpClient | undefined;
  private localIp = "";
  private source: { server: ProbeServer; link: QuicLink } | null = null;
  private passageServer: Endpoint | null = null;
  private publicAddress: string | null = null;
  private portTest: { token: Uint8Array; server: Endpoint; done: boolean; onAck?: () => void } | null = null;
  /** The same-IP/other-port mapping test is on its way (begin sent, ack not yet in nor given up). */
  private portTestPending = false;
  private decided: NatDecision | null = null;
  private resolveDecision: (d: NatDecision) => void = () => {};
  private readonly decision = new Promise<NatDecision>((r) => (this.resolveDecision = r));
  private tcpCheck: Promise<void> | null = null;
  private learning: Promise<void> = Promise.resolve();

  constructor(private readonly opts: ProbeOptions) {
    this.timeoutMs = opts.timeoutMs ?? DEFAULTS.probe_timeout_s * 1000;
    this.servers = cleanServers(opts.servers);
    this.signal = opts.signal ? AbortSignal.any([opts.signal, this.stop.signal]) : this.stop.signal;
  }

  private get elapsed(): number {
    return Math.round(performance.now() - this.t0);
  }

  private get remainingMs(): number {
    return Math.max(1, this.timeoutMs - (performance.now() - this.t0));
  }

  private progress(phase: ProbeProgress["phase"], message: string): void {
    this.opts.onProgress?.({ phase, message, elapsedMs: this.elapsed });
  }

  private note(e: ProbeEvidence): void {
    this.evidence.push({ ...e, atMs: this.elapsed });
  }

  async run(): Promise<ProbeReport> {
    if (this.servers.length === 0) throw new ConfigError("--server", "at least one server is needed (ip:port)");
    this.localIp = normalizeIp(this.opts.localIp ?? (await routeSourceIp(this.servers[0]!)));
    const family = isIP(this.localIp);
    this.servers = this.servers.filter((s) => isIP(s.ip) === family).slice(0, MAX_PRE_PROBE_SERVERS);
    if (this.servers.length === 0) throw new ConfigError("--server", `no server of the local address family (IPv${family})`);
    this.contacted.add(this.localIp);
    for (const s of this.servers) this.contacted.add(s.ip);

    this.client = createUdpClient({ log: this.opts.log }, { host: this.localIp, port: 0, onRawDatagram: (buf, rinfo, kind) => kind === "sn" && this.onQuicSocket(buf, { ip: normalizeIp(rinfo.address), port: rinfo.port }) });
    await this.client.start();
    this.obs.localAddress = { ip: this.localIp, port: this.client.port };
    this.progress("start", `probing from ${formatEndpoint(this.obs.localAddress)} with ${this.servers.map(formatEndpoint).join(", ")}`);

    this.timers.push(setTimeout(() => setImmediate(() => this.timeUp()), this.timeoutMs));
    this.timers.push(setTimeout(() => this.maybeCheckTcp(), TCP_CHECK_AFTER_MS));
    const abort = () => this.conclude(decideNat(this.obs));
    this.opts.signal?.addEventListener("abort", abort, { once: true });

    void this.preProbe().catch((err) => this.opts.log?.debug("pre-probe failed", { error: errorLine(err) }));
    void this.cone().catch((err) => {
      this.opts.log?.debug("cone test failed", { error: errorLine(err) });
      if (!this.decided) this.note({ test: "formal-mapping", error: errorLine(err) });
    });

    const d = await this.decision;
    this.opts.signal?.removeEventListener("abort", abort);
    this.note({ test: "decision", rule: d.rule, reason: d.reason, certain: d.certain });
    this.progress("decision", `${d.label ?? "unknown"}: ${d.reason}`);

    let lifetime: LifetimeReport | null = null;
    let elapsedMs: number;
    try {
      if (this.opts.lifetime && this.source && d.nat !== null && d.nat !== "udp-blocked" && d.nat !== "quic-only" && !this.opts.signal?.aborted) {
        lifetime = await this.lifetime(this.source);
      }
    } finally {
      // The run ends here; closing the QUIC links (their draining) is not part of it.
      elapsedMs = this.elapsed;
      await this.cleanup();
    }
    return {
      nat: d.nat,
      label: d.label,
      publicAddress: this.publicAddress,
      localAddress: this.obs.localAddress ? formatEndpoint(this.obs.localAddress) : null,
      mapping: d.mapping,
      filtering: d.filtering,
      portPreserved: d.portPreserved,
      lifetime,
      servers: this.servers.map(formatEndpoint),
      evidence: this.evidence,
      elapsedMs,
    };
  }

  // ---- step 1: pre-probe ----

  private connect(s: ProbeServer): Promise<QuicLink | null> {
    const k = formatEndpoint(s);
    let p = this.connects.get(k);
    if (p) return p;
    p = (async () => {
      const step = { signal: this.signal, timeoutMs: this.remainingMs };
      try {
        const link = s.publicKey
          ? (await bootstrapApp(this.client!, { addr: s, nodePublicKey: s.publicKey }, { appKey: generateNodeKey(), ...step })).link
          : await this.client!.dial(s, step);
        this.links.push(link);
        this.obs.udpPath = true;
        return link;
      } catch (err) {
        if (!this.decided) this.note({ test: "pre-probe", server: k, mapped: null, error: errorLine(err) });
        this.obs.preProbe = [...this.obs.preProbe, { server: s, mapped: null }];
        return null;
      }
    })();
    this.connects.set(k, p);
    return p;
  }

  private async whoami(s: ProbeServer): Promise<void> {
    const link = await this.connect(s);
    if (!link || this.decided) return;
    const k = formatEndpoint(s);
    try {
      const t = performance.now();
      const me = decodeMessage(WhoamiResponseSchema, expectOk(await link.request(WHOAMI_METHOD, undefined, { signal: this.signal, timeoutMs: this.remainingMs })), "WhoamiResponse");
      const mapped = { ip: normalizeIp(me.ip), port: me.port };
      this.obs.preProbe = [...this.obs.preProbe, { server: s, mapped }];
      this.publicAddress ??= formatEndpoint(mapped);
      this.note({ test: "pre-probe", server: k, mapped: formatEndpoint(mapped), rttMs: Math.round((performance.now() - t) * 10) / 10, pinned: link.pinned });
      this.progress("pre-probe", `${k} sees ${formatEndpoint(mapped)}`);
    } catch (err) {
      this.obs.preProbe = [...this.obs.preProbe, { server: s, mapped: null }];
      if (!this.decided) this.note({ test: "pre-probe", server: k, mapped: null, error: errorLine(err) });
    }
    this.evaluate();
  }

  private async preProbe(): Promise<void> {
    await Promise.all(this.servers.map((s) => this.whoami(s)));
    const want = this.opts.minServers ?? PRE_PROBE_MIN_SERVERS;
    if (distinctIps(this.servers) < want && !this.decided) {
      this.learning = this.learnServers(want);
      await this.learning;
    }
    this.obs.preProbeFinished = true;
    if (this.links.length === 0) {
      // No QUIC path to any server: say whether TCP works before concluding.
      this.obs.udpPath = false;
      this.maybeCheckTcp();
      await this.tcpCheck;
      this.conclude(decideNat(this.obs));
      return;
    }
    this.evaluate();
  }

  /** DESIGN §6: "with fewer than 3 known servers the client asks the given ones for more". */
  private async learnServers(want: number): Promise<void> {
    const link = this.links[0];
    if (!link) return;
    const family = isIP(this.localIp);
    let learned: ProbeServer[] = [];
    const consider = (cand: Endpoint) => {
      if (isIP(cand.ip) !== family || cand.port < 1 || cand.port > 65535) return;
      const ip = normalizeIp(cand.ip);
      if ([...this.servers, ...learned].some((s) => sameIp(s.ip, ip)) || sameIp(ip, this.localIp)) return;
      learned.push({ ip, port: cand.port });
    };
    const step = { signal: this.signal, timeoutMs: this.remainingMs };
    let via = MESH_PEERS_METHOD;
    try {
      // The mesh service's peers API (records of the nodes it knows, with their UDP ports)…
      const ans = decodeMessage(PeersAnswerSchema, expectOk(await link.request(MESH_PEERS_METHOD, encodeMessage(PeersRequestSchema, { max: MAX_SERVERS_ANSWER }), step)), "PeersAnswer");
      for (const rec of ans.records) for (const a of rec.addresses) if (a.udpPort > 0) consider({ ip: a.ip, port: a.udpPort });
    } catch {
      // …else the NAT service's own list.
      via = NAT_SERVERS_METHOD;
      try {
        const ans = decodeMessage(NatServersAnswerSchema, expectOk(await link.request(NAT_SERVERS_METHOD, undefined, step)), "NatServersAnswer");
        for (const text of ans.servers) {
          const m = /^\[?([^\]]+?)\]?:(\d+)$/.exec(text);
          if (m) consider({ ip: m[1]!, port: Number(m[2]) });
        }
      } catch (err) {
        this.note({ test: "servers", asked: formatEndpoint(link.remote), learned: [], error: errorLine(err) });
        return;
      }
    }
    learned = learned.slice(0, Math.max(0, want - distinctIps(this.servers)));
    this.note({ test: "servers", asked: formatEndpoint(link.remote), via, learned: learned.map(formatEndpoint) });
    for (const s of learned) this.contacted.add(s.ip);
    this.servers.push(...learned);
    await Promise.all(learned.map((s) => this.whoami(s)));
  }

  // ---- steps 1b–3 on the source server ----

  private async cone(): Promise<void> {
    let first = true;
    const candidates = [...this.servers];
    for (let i = 0; i < candidates.length; i++) {
      const s = candidates[i]!;
      if (this.decided) return;
      const link = await this.connect(s);
      if (!link || this.decided) continue;
      this.source ??= { server: s, link };
      const withPreTests = first;
      first = false;
      if (withPreTests) this.portTestPending = true;
      let clean: number;
      try {
        clean = await this.formalAttempt(s, link, withPreTests, i < candidates.length - 1);
      } catch (err) {
        if (withPreTests && !this.portTest) this.portTestPending = false;
        this.evaluate();
        throw err;
      }
      if (clean !== 0) return; // NewHost was tested (or the step could not run at all)
      this.progress("new-host", `the delegates of ${formatEndpoint(s)} sent only from IPs this host talks to; trying another source`);
    }
  }

  /** One formal step with `s` as source; returns the number of delegates that sent from an IP we never talk to
   *  (-1 when the step did not get that far). */
  private async formalAttempt(s: ProbeServer, link: QuicLink, withPreTests: boolean, hasNext: boolean): Promise<number> {
    const k = formatEndpoint(s);
    const step = { signal: this.signal, timeoutMs: this.remainingMs };
    const begin = decodeMessage(NatBeginAnswerSchema, expectOk(await link.request(NAT_BEGIN_METHOD, encodeMessage(NatBeginRequestSchema, { probeKey: this.key }), step)), "NatBeginAnswer");
    const token = begin.token;
    const silence = () => Math.max(SILENCE_MIN_MS, SILENCE_RTTS * (link.rttMs ?? 0));

    if (withPreTests) {
      // 1b. Same IP, other port: the mapping P gets there.
      const portServer = { ip: s.ip, port: begin.newPort };
      this.portTest = { token, server: portServer, done: false };
      void this.sendUntilAck(
        () => this.client!.sendRaw(buildControl(this.key, { type: "hello-port", token }), portServer.port, portServer.ip),
        () => this.portTest?.done ?? true,
        (wake) => (this.portTest!.onAck = wake),
      ).then(() => {
        this.portTestPending = false;
        if (this.portTest && !this.portTest.done) {
          this.portTest.done = true;
          if (!this.decided) this.note({ test: "new-port-mapping", server: formatEndpoint(portServer), mapped: null });
        }
        this.evaluate();
      });
      // 2. Passage on P's 4-tuple.
      this.passageServer = s;
      const passage: PassageObservation = { rawProbes: 0, quicWorks: true, finished: false };
      this.obs.passage = passage;
      void link
        .request(NAT_PASSAGE_METHOD, encodeMessage(NatPassageRequestSchema, { token }), step)
        .then((ans) => {
          const sent = decodeMessage(NatPassageAnswerSchema, expectOk(ans), "NatPassageAnswer").sent;
          this.note({ test: "passage", server: k, sent, receivedSoFar: passage.rawProbes });
          this.progress("passage", `${k} sent ${sent} raw probes on the QUIC 4-tuple; ${passage.rawProbes} arrived so far`);
          this.after(silence(), () => {
            passage.finished = true;
            this.evaluate();
          });
        })
        .catch((err) => {
          if (!this.decided) this.note({ test: "passage", server: k, sent: null, received: passage.rawProbes, error: errorLine(err) });
        });
    }

    // 3. Formal probe on a new unconnected socket.
    const attempt: FormalAttempt = {
      server: s,
      token,
      socket: await openProbeSocket(this.localIp, (buf, from) => this.onFormalSocket(attempt, buf, from)),
      obs: { localAddress: null, mapped: null, newPort: 0, newHostFrom: [], newHostDelegates: 0, finished: false },
    };
    attempt.obs.localAddress = attempt.socket.local;
    this.attempts.push(attempt);
    let acked: { mapped: Endpoint; cookie: Uint8Array } | null = null;
    await this.sendUntilAck(
      () => attempt.socket.send(buildControl(this.key, { type: "hello-formal", token }), s),
      () => acked !== null,
      (wake) =>
        (attempt.onAck = (mapped, cookie) => {
          acked = { mapped, cookie };
          wake();
        }),
    );
    if (this.decided) return -1;
    if (!acked) {
      this.note({ test: "formal-mapping", server: k, local: formatEndpoint(attempt.socket.local), mapped: null });
      return -1;
    }
    const { mapped, cookie } = acked as { mapped: Endpoint; cookie: Uint8Array };
    attempt.obs.mapped = mapped;
    this.obs.formal = attempt.obs;
    this.note({ test: "formal-mapping", server: k, local: formatEndpoint(attempt.socket.local), mapped: formatEndpoint(mapped) });
    this.progress("formal", `new socket ${formatEndpoint(attempt.socket.local)} is ${formatEndpoint(mapped)} outside`);
    this.evaluate();

    const proof = await makeNewHostProof(mapped.ip, this.hostKey, { signal: this.signal });
    await this.learning;
    if (this.decided) return -1;
    const avoidIps = [...this.contacted].slice(0, MAX_AVOID_IPS);
    const ans = decodeMessage(
      NatFormalAnswerSchema,
      expectOk(await link.request(NAT_FORMAL_METHOD, encodeMessage(NatFormalRequestSchema, { token, cookie, avoidIps, proof: { issuedAtMs: proof.issuedAtMs, nonce: proof.nonce } }), { signal: this.signal, timeoutMs: this.remainingMs })),
      "NatFormalAnswer",
    );
    const clean = ans.delegates.filter((d) => d.sent > 0 && d.fromIp !== "" && !this.contacted.has(normalizeIp(d.fromIp))).length;
    this.note({ test: "new-port", server: k, sent: ans.newPortSent, receivedSoFar: attempt.obs.newPort });
    this.note({
      test: "new-host",
      server: k,
      delegates: ans.delegates.map((d) => ({ node: d.nodeId.slice(0, 16), from: d.fromIp || null, sent: d.sent, ...(d.error ? { error: d.error } : {}) })),
      usable: clean,
      receivedSoFar: attempt.obs.newHostFrom.length,
    });
    this.progress("new-host", `${ans.delegates.length} delegate(s) sent NewHost probes, ${clean} from IPs this host never talks to`);
    attempt.obs.newHostDelegates = clean;
    if (clean === 0 && hasNext) return 0;
    this.after(silence(), () => {
      attempt.obs.finished = true;
      this.evaluate();
    });
    this.evaluate();
    return clean;
  }

  /** Sends a hello up to HELLO_ATTEMPTS times until `done()`; `arm` gets the function that ends the wait early. */
  private async sendUntilAck(send: () => Promise<void>, done: () => boolean, arm: (wake: () => void) => void): Promise<void> {
    let wake: () => void = () => {};
    const woken = new Promise<void>((r) => (wake = r));
    arm(wake);
    for (let i = 0; i < HELLO_ATTEMPTS && !done() && !this.decided; i++) {
      await send().catch(() => {});
      await Promise.race([woken, sleep(HELLO_RETRY_MS)]);
    }
  }

  // ---- datagrams ----

  /** Datagrams on P, the socket holding the QUIC connections: port-test acks and passage probes. */
  private onQuicSocket(buf: Uint8Array, from: Endpoint): void {
    if (this.decided) return;
    if (controlToken(buf)) {
      const d = decodeControl(buf, this.key);
      const pt = this.portTest;
      if (d.ok && d.msg.type === "ack-port" && pt && !pt.done && sameIp(from.ip, pt.server.ip) && from.port === pt.server.port) {
        pt.done = true;
        this.portTestPending = false;
        this.obs.preProbe = [...this.obs.preProbe, { server: pt.server, mapped: d.msg.mapped }];
        this.note({ test: "new-port-mapping", server: formatEndpoint(pt.server), mapped: formatEndpoint(d.msg.mapped) });
        pt.onAck?.();
        this.evaluate();
      }
      return;
    }
    const v = verifyProbe(buf, this.key);
    if (!v.ok) return;
    const server = this.passageServer;
    const check = server ? checkProbeSource(v.source, from, { sourceServer: server, arrivedOn: "quic", contactedIps: this.contacted }) : null;
    if (!check?.ok || !this.obs.passage) {
      this.note({ test: "probe-ignored", socket: "quic", source: v.source, from: formatEndpoint(from), reason: check && !check.ok ? check.reason : "no passage test running" });
      return;
    }
    this.obs.passage.rawProbes++;
    if (this.obs.passage.rawProbes === 1) this.note({ test: "passage", server: formatEndpoint(server!), received: formatEndpoint(from) });
    this.evaluate();
  }

  /** Datagrams on a formal socket: its ack, NewPort and NewHost probes. */
  private onFormalSocket(a: FormalAttempt, buf: Uint8Array, from: Endpoint): void {
    if (this.decided) return;
    if (controlToken(buf)) {
      const d = decodeControl(buf, this.key);
      if (d.ok && d.msg.type === "ack-formal" && sameIp(from.ip, a.server.ip) && from.port === a.server.port) a.onAck?.(d.msg.mapped, d.msg.cookie);
      return;
    }
    const v = verifyProbe(buf, this.key);
    if (!v.ok) return;
    const check = checkProbeSource(v.source, from, { sourceServer: a.server, arrivedOn: "formal", contactedIps: this.contacted });
    if (!check.ok) {
      this.note({ test: "probe-ignored", socket: "formal", source: v.source, from: formatEndpoint(from), reason: check.reason });
      return;
    }
    const server = formatEndpoint(a.server);
    if (v.source === "newPort") {
      a.obs.newPort++;
      if (a.obs.newPort === 1) {
        this.note({ test: "new-port", server, received: formatEndpoint(from) });
        this.progress("formal", `NewPort probe from ${formatEndpoint(from)} got in`);
      }
    } else if (v.source === "newHost") {
      const first = !a.obs.newHostFrom.some((e) => sameIp(e.ip, from.ip) && e.port === from.port);
      a.obs.newHostFrom = [...a.obs.newHostFrom, from];
      if (first) {
        this.note({ test: "new-host", server, received: formatEndpoint(from) });
        this.progress("new-host", `NewHost probe from ${formatEndpoint(from)} got in`);
      }
    }
    this.evaluate();
  }

  // ---- decision ----

  private evaluate(): void {
    if (this.decided) return;
    const d = decideNat(this.obs);
    if (!d.certain) return;
    // Symmetric is certain from two answers, but the mapping axis needs the same-IP/other-port answer: wait for
    // it while it is on its way (bounded by its own retries and the timeout).
    if (d.rule === "symmetric" && this.portTestPending) return;
    this.conclude(d);
  }

  private timeUp(): void {
    if (this.decided) return;
    this.obs.preProbeFinished = true;
    if (this.obs.passage) this.obs.passage.finished = true;
    if (this.obs.formal) this.obs.formal.finished = true;
    if (this.links.length === 0) {
      this.obs.udpPath = false;
      // The HTTPS check ends by the same deadline: wait for its verdict rather than report "not tested".
      if (this.tcpCheck) {
        void this.tcpCheck.finally(() => this.conclude(decideNat(this.obs)));
        return;
      }
    }
    this.conclude(decideNat(this.obs));
  }

  private conclude(d: NatDecision): void {
    if (this.decided) return;
    this.decided = d;
    this.resolveDecision(d);
  }

  /** Runs `fn` after `ms` (capped by the timeout), behind any datagram already queued by then: under load the
   *  timer and a late probe can become ready in the same loop turn, and timers run before I/O. */
  private after(ms: number, fn: () => void): void {
    this.timers.push(setTimeout(() => setImmediate(fn), Math.min(ms, this.remainingMs)));
  }

  private maybeCheckTcp(): void {
    if (this.tcpCheck || this.links.length > 0 || this.decided) return;
    const s = this.servers[0]!;
    const tcp = { ip: s.ip, port: this.opts.tcpPortOf?.(s) ?? s.port };
    this.progress("tcp", `no QUIC answer yet; trying HTTPS whoami at ${formatEndpoint(tcp)}`);
    this.tcpCheck = httpsWhoami(tcp, { signal: AbortSignal.any([this.signal, AbortSignal.timeout(this.remainingMs)]) })
      .then((r) => {
        this.obs.tcpWorks = true;
        this.note({ test: "tcp", server: formatEndpoint(tcp), mapped: r.address });
      })
      .catch((err) => {
        this.obs.tcpWorks = false;
        this.note({ test: "tcp", server: formatEndpoint(tcp), mapped: null, error: errorLine(err) });
      });
  }

  // ---- step 4 ----

  private async lifetime(source: { server: ProbeServer; link: QuicLink }): Promise<LifetimeReport | null> {
    this.progress("lifetime", `measuring the mapping lifetime with ${formatEndpoint(source.server)} (up to ${this.opts.lifetimeMaxS ?? LIFETIME_MAX_S} s)`);
    try {
      const out = await measureLifetime({
        link: source.link,
        server: source.server,
        localIp: this.localIp,
        maxS: this.opts.lifetimeMaxS,
        signal: this.opts.signal,
        onProgress: (m) => this.progress("lifetime", m),
      });
      this.note({ test: "lifetime", server: formatEndpoint(source.server), samples: out.samples, lost: out.inconsistent, elapsedMs: out.elapsedMs });
      return out.report;
    } catch (err) {
      this.note({ test: "lifetime", server: formatEndpoint(source.server), error: errorLine(err) });
      if (err instanceof PeerError) return null;
      if (this.opts.signal?.aborted) return null;
      return null;
    }
  }

  private async cleanup(): Promise<void> {
    for (const t of this.timers) clearTimeout(t);
    this.stop.abort(new PeerError("the probe is over"));
    for (const a of this.attempts) a.socket.close();
    await this.client?.stop();
  }
}
