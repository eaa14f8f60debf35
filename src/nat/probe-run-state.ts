// The shared state of one probe run (probe-runner.ts): the observations decideNat reads, the evidence of the
// report, the decision once certain, and the clock's timers. The step modules (probe-pre-probe.ts,
// probe-source-steps.ts) read and fill it; nothing here sends a packet except through the ProbeIo.
import { errorLine } from "../errors.ts";
import { decideNat, type FormalObservation, type NatDecision, type NatObservations } from "./decision.ts";
import type { LifetimeReport, ProbeEvidence } from "./probe-report.ts";
import { PROBE_PLAN, type ProbeStep } from "./probe-plan.ts";
import type { FormalSocket, ProbeClock, ProbeIo, ProbeServer, ProbeStepOptions, ServerLink, UdpCheckAnswer } from "./probe-io.ts";
import type { TimerHandle } from "../contracts/index.ts";
import { formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";
import type { Logger } from "../contracts/index.ts";

export interface ProbeProgress {
  phase: "start" | "pre-probe" | "passage" | "formal" | "new-host" | "tcp" | "decision" | "lifetime";
  message: string;
  elapsedMs: number;
}

export interface ProbeRunnerInit {
  servers: ProbeServer[];
  localIp: string;
  timeoutMs: number;
  /** Distinct server IPs wanted for the pre-probe. */
  minServers: number;
  lifetime: boolean;
  lifetimeMaxS?: number;
  tcpPortOf?: (server: Endpoint) => number;
  /** IPs contacted from other sockets of this host before the run (see ProbeOptions.contactedIps). */
  contactedIps?: Iterable<string>;
  signal?: AbortSignal;
  onProgress?: (p: ProbeProgress) => void;
  log?: Logger;
  /** When the run started (clock time), so elapsed times include setting up the sockets. */
  startedAt: number;
  /** @default PROBE_PLAN */
  plan?: readonly ProbeStep[];
}

export interface ProbeRunOutcome {
  decision: NatDecision;
  publicAddress: string | null;
  lifetime: LifetimeReport | null;
  servers: ProbeServer[];
  evidence: ProbeEvidence[];
  elapsedMs: number;
}

/** One formal socket F and what arrived on it. */
export interface FormalAttempt {
  server: ProbeServer;
  socket: FormalSocket;
  obs: FormalObservation;
  onAck?: (mapped: Endpoint, cookie: Uint8Array) => void;
  /** The IPs its NewHost probes may not come from, once its mapping is known (ProbeRunState.contactedBehind). */
  contacted?: ReadonlySet<string>;
}

export class ProbeRunState {
  readonly plan: readonly ProbeStep[];
  readonly evidence: ProbeEvidence[] = [];
  /** Every IP this host talks to (all servers it knows, its own): NewHost from them never counts (rule R4). */
  readonly contacted = new Set<string>();
  /** IPs this host's other sockets talked to lately (init.contactedIps), and their union with `contacted`. */
  private readonly elsewhere = new Set<string>();
  private withElsewhere: ReadonlySet<string> | undefined;
  readonly obs: NatObservations;
  readonly servers: ProbeServer[];
  readonly connects = new Map<string, Promise<ServerLink | null>>();
  readonly links: ServerLink[] = [];
  readonly attempts: FormalAttempt[] = [];
  readonly timers: TimerHandle[] = [];
  readonly stop = new AbortController();
  readonly signal: AbortSignal;
  source: { server: ProbeServer; link: ServerLink } | null = null;
  passageServer: Endpoint | null = null;
  publicAddress: string | null = null;
  portTest: { server: Endpoint; done: boolean; onAck?: () => void } | null = null;
  /** The same-IP/other-port mapping test is on its way (begin sent, ack not yet in nor given up). */
  portTestPending = false;
  decided: NatDecision | null = null;
  private resolveDecision: (d: NatDecision) => void = () => {};
  readonly decision = new Promise<NatDecision>((r) => (this.resolveDecision = r));
  tcpCheck: Promise<void> | null = null;
  /** How long the HTTPS whoami took, ms (a few round trips of the path); null until it answered. */
  tcpMs: number | null = null;
  /** The UDP check (probe-udp-check.ts): when its first request left, and the first answer. */
  udpCheck: { step: ProbeStep; startedAt: number | null; answer: { from: Endpoint; via: UdpCheckAnswer } | null } | null = null;
  /** Closes what the run opened besides formal sockets (socket U). */
  readonly closers: (() => void)[] = [];
  /** Asking for more servers (the formal step waits for it: their IPs are avoided by NewHost). */
  learning: Promise<void> = Promise.resolve();

  constructor(
    readonly io: ProbeIo,
    readonly clock: ProbeClock,
    readonly init: ProbeRunnerInit,
  ) {
    this.plan = init.plan ?? PROBE_PLAN;
    this.servers = [...init.servers];
    this.signal = init.signal ? AbortSignal.any([init.signal, this.stop.signal]) : this.stop.signal;
    this.obs = { localAddress: io.localAddress, preProbe: [], preProbeFinished: false, udpPath: null, tcpWorks: null, passage: null, formal: null };
    this.contacted.add(init.localIp);
    for (const s of this.servers) this.contacted.add(s.ip);
    for (const ip of init.contactedIps ?? []) this.elsewhere.add(normalizeIp(ip));
  }

  /** Where NewHost probes towards a formal socket mapped at `mapped` may not come from. Behind address
   *  translation (mapped ≠ local) the hosts our other sockets talked to count too: a NAT router may admit, box-wide,
   *  every host its LAN sent UDP to (the "seen destinations" restricted cone). Without translation the filters
   *  are host or network firewalls that keep state per flow, so only this run's own contacts count. */
  contactedBehind(mapped: Endpoint): ReadonlySet<string> {
    if (this.elsewhere.size === 0 || sameIp(mapped.ip, this.init.localIp)) return this.contacted;
    this.withElsewhere ??= new Set([...this.contacted, ...this.elsewhere]);
    return this.withElsewhere;
  }

  get elapsed(): number {
    return Math.round(this.clock.now() - this.init.startedAt);
  }

  get remainingMs(): number {
    return Math.max(1, this.init.timeoutMs - (this.clock.now() - this.init.startedAt));
  }

  get step(): ProbeStepOptions {
    return { signal: this.signal, timeoutMs: this.remainingMs };
  }

  progress(phase: ProbeProgress["phase"], message: string): void {
    this.init.onProgress?.({ phase, message, elapsedMs: this.elapsed });
  }

  note(e: ProbeEvidence): void {
    this.evidence.push({ ...e, atMs: this.elapsed });
  }

  connect(s: ProbeServer): Promise<ServerLink | null> {
    const k = formatEndpoint(s);
    let p = this.connects.get(k);
    if (p) return p;
    p = (async () => {
      try {
        const link = await this.io.connect(s, this.step);
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

  evaluate(): void {
    if (this.decided) return;
    const d = decideNat(this.obs);
    if (!d.certain) return;
    // Symmetric is certain from two answers, but the mapping axis needs the same-IP/other-port answer: wait for
    // it while it is on its way (bounded by its own retries and the timeout).
    if (d.rule === "symmetric" && this.portTestPending) return;
    this.conclude(d);
  }

  timeUp(): void {
    if (this.decided) return;
    this.obs.preProbeFinished = true;
    if (this.obs.passage) this.obs.passage.finished = true;
    if (this.obs.formal) this.obs.formal.finished = true;
    if (this.links.length === 0) {
      this.obs.udpPath = false;
      // The HTTPS check ends by the same deadline: wait for its verdict rather than report "not tested".
      if (this.tcpCheck) {
        void this.tcpCheck
          .finally(() => this.conclude(decideNat(this.obs)))
          .catch((err: unknown) => this.init.log?.debug("conclusion after the TCP check failed", { error: String(err) }));
        return;
      }
    }
    this.conclude(decideNat(this.obs));
  }

  conclude(d: NatDecision): void {
    if (this.decided) return;
    this.decided = d;
    this.resolveDecision(d);
  }

  /** Runs `fn` after `ms` (capped by the timeout), behind any datagram already queued by then. */
  after(ms: number, fn: () => void): void {
    this.timers.push(this.clock.setTimeout(() => this.clock.defer(fn), Math.min(ms, this.remainingMs)));
  }
}
