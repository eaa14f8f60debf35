// Runs the probe plan (probe-plan.ts) against a ProbeIo and feeds every observation to decideNat (decision.ts) as
// it arrives; the run stops as soon as the answer is certain, else when the timeout runs out. Negative answers
// are believed after the silence window of their step; no QUIC answer at all starts the TCP step. No sockets and
// no crypto here: probe-client.ts gives the sockets, tests give a fake clock and scripted evidence.
import { errorLine, PeerError } from "../errors.ts";
import { LIFETIME_MAX_S } from "./constants.ts";
import { decideNat } from "./decision.ts";
import type { LifetimeReport } from "./probe-report.ts";
import { LIFETIME_SKIPPED_FOR, stepsStartedBy, type ProbeStep, type ProbeStepId, type ProbeTrigger } from "./probe-plan.ts";
import type { ProbeClock, ProbeIo, ProbeServer, ServerLink } from "./probe-io.ts";
import type { ProbeSource } from "./probe-packet.ts";
import { checkTcp, preProbe } from "./probe-pre-probe.ts";
import { udpCheck } from "./probe-udp-check.ts";
import { ProbeRunState, type ProbeRunnerInit, type ProbeRunOutcome } from "./probe-run-state.ts";
import { onPortAck, onProbe, runSources } from "./probe-source-steps.ts";
import { formatEndpoint, type Endpoint } from "./source-check.ts";

export type { ProbeProgress, ProbeRunnerInit, ProbeRunOutcome } from "./probe-run-state.ts";

export class ProbeRunner {
  private readonly st: ProbeRunState;

  constructor(io: ProbeIo, clock: ProbeClock, init: ProbeRunnerInit) {
    this.st = new ProbeRunState(io, clock, init);
  }

  /** ack-port on P (already authenticated). */
  onPortAck(from: Endpoint, mapped: Endpoint): void {
    onPortAck(this.st, from, mapped);
  }

  /** A probe with this run's MAC on P. */
  onProbe(source: ProbeSource, from: Endpoint): void {
    onProbe(this.st, "quic", source, from);
  }

  /** Runs the plan until the decision (and the lifetime step when asked); always closes what it opened. */
  async run(): Promise<ProbeRunOutcome> {
    const st = this.st;
    st.progress("start", `probing from ${formatEndpoint(st.io.localAddress)} with ${st.servers.map(formatEndpoint).join(", ")}`);
    st.timers.push(st.clock.setTimeout(() => st.clock.defer(() => st.timeUp()), st.init.timeoutMs));
    for (const step of st.plan) {
      for (const t of step.triggers) if (t.on === "timer") st.timers.push(st.clock.setTimeout(() => this.start(step), t.afterMs));
    }
    const abort = () => st.conclude(decideNat(st.obs));
    st.init.signal?.addEventListener("abort", abort, { once: true });
    this.fire({ on: "run" });

    const d = await st.decision;
    st.init.signal?.removeEventListener("abort", abort);
    st.note({ test: "decision", rule: d.rule, reason: d.reason, certain: d.certain });
    st.progress("decision", `${d.label ?? "unknown"}: ${d.reason}`);

    let lifetime: LifetimeReport | null = null;
    let elapsedMs: number;
    try {
      const skipped = d.nat === null || (LIFETIME_SKIPPED_FOR as readonly string[]).includes(d.nat);
      if (st.init.lifetime && st.source && !skipped && !st.init.signal?.aborted && stepsStartedBy({ on: "decision" }, st.plan).some((s) => s.id === "lifetime")) {
        lifetime = await this.lifetime(st.source);
      }
    } finally {
      // The run ends here; closing the QUIC links (their draining) is not part of it.
      elapsedMs = st.elapsed;
      this.cleanup();
    }
    return { decision: d, publicAddress: st.publicAddress, lifetime, servers: st.servers, evidence: st.evidence, elapsedMs };
  }

  /** Starts the steps a trigger names (the per-source chain starts with the run). */
  private fire(trigger: ProbeTrigger): void {
    for (const step of stepsStartedBy(trigger, this.st.plan)) {
      if (step.perSource !== "no") {
        if (trigger.on === "run") this.startSources(step.id);
        continue;
      }
      this.start(step);
    }
  }

  private start(step: ProbeStep): void {
    const st = this.st;
    switch (step.id) {
      case "pre-probe":
        void preProbe(st, () => this.fire({ on: "step", step: "pre-probe" })).catch((err) => st.init.log?.debug("pre-probe failed", { error: errorLine(err) }));
        return;
      case "udp-check":
        udpCheck(st, step);
        return;
      case "tcp":
        checkTcp(st, step);
        return;
      default:
        throw new Error(`step ${step.id} is not started on its own`);
    }
  }

  private startSources(first: ProbeStepId): void {
    const st = this.st;
    void runSources(st, first).catch((err) => {
      st.init.log?.debug("cone test failed", { error: errorLine(err) });
      if (!st.decided) st.note({ test: "formal-mapping", error: errorLine(err) });
    });
  }

  // ---- step 4 ----

  private async lifetime(source: { server: ProbeServer; link: ServerLink }): Promise<LifetimeReport | null> {
    this.st.progress("lifetime", `measuring the mapping lifetime with ${formatEndpoint(source.server)} (up to ${this.st.init.lifetimeMaxS ?? LIFETIME_MAX_S} s)`);
    try {
      const out = await source.link.lifetime({ maxS: this.st.init.lifetimeMaxS, signal: this.st.init.signal, onProgress: (m) => this.st.progress("lifetime", m) });
      this.st.note({ test: "lifetime", server: formatEndpoint(source.server), samples: out.samples, lost: out.inconsistent, elapsedMs: out.elapsedMs });
      return out.report;
    } catch (err) {
      this.st.note({ test: "lifetime", server: formatEndpoint(source.server), error: errorLine(err) });
      return null;
    }
  }

  private cleanup(): void {
    for (const t of this.st.timers) this.st.clock.clearTimeout(t);
    this.st.stop.abort(new PeerError("the probe is over"));
    for (const a of this.st.attempts) a.socket.close();
    for (const close of this.st.closers.splice(0)) close();
  }
}
