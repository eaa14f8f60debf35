// `findings probe` as data (DESIGN §6 steps 1–4; STUN2 seed 000 §提供的服务 1–2): for every step, what starts it,
// what it sends, what it waits for and how long, which observation it fills and which rules of the decision matrix
// (decision.ts) its evidence can settle. probe-runner.ts interprets the plan; probe-client.ts gives it sockets.
//
//   step               starts after        sends (over)                         waits for                      decides
//   pre-probe          the run             whoami to every server (QUIC on P)  mapped addresses, run deadline symmetric, udp-blocked
//   udp-check          the run             Binding + QUIC version probe (raw U) any answer, short resends      udp-blocked
//   tcp                0.25 s / pre-probe  HTTPS whoami to the first server     an answer, run deadline        udp-blocked, no-answer
//   begin              the run, per source nat.begin {K} (QUIC)                 token + the source's new port  –
//   new-port-mapping   begin, 1st source   hello-port (raw on P → new port)    ack-port, 3 × 300 ms           the mapping axis
//   passage            begin, 1st source   nat.passage (QUIC)                   2 SN probes on P, silence      quic-only
//   formal-mapping     begin               hello-formal (raw on new socket F)  ack-formal, 3 × 300 ms         –
//   formal             formal-mapping      nat.formal {cookie, proof} (QUIC)   NewPort/NewHost on F, silence  the step 3 matrix
//   lifetime           the decision        nat.live.* + fresh sockets           delayed probes (≤ max delay)   –
// "Silence" is the wait after the server confirmed its burst: max(SILENCE_MIN_MS, SILENCE_RTTS × RTT). The UDP
// check's silence is measured with TCP: once the HTTPS whoami answered (in time T, a few round trips), no UDP
// answer within UDP_BLOCKED_TCP_TIMES × T + UDP_BLOCKED_MARGIN_MS of the first UDP request is udp-blocked, long
// before the timeout. The run's timeout caps every wait. When the delegates of a formal step sent only from IPs this host talks to, NewHost was
// not tested: begin, formal-mapping and formal run again with the next server as source.
import { METHOD } from "../rpc/index.ts";
import type { NatObservations, NatRule } from "./decision.ts";
import {
  HELLO_ATTEMPTS,
  HELLO_RETRY_MS,
  PRE_PROBE_MIN_SERVERS,
  SILENCE_MIN_MS,
  SILENCE_RTTS,
  TCP_CHECK_AFTER_MS,
  UDP_BLOCKED_MARGIN_MS,
  UDP_BLOCKED_TCP_TIMES,
  UDP_CHECK_FIRST_GAP_MS,
  UDP_CHECK_MAX_GAP_MS,
} from "./constants.ts";

export type ProbeStepId = "pre-probe" | "udp-check" | "tcp" | "begin" | "new-port-mapping" | "passage" | "formal-mapping" | "formal" | "lifetime";

/** Where a step sends and listens: QUIC links, the pre-probe socket P, a formal socket F, the UDP check's
 *  socket U, HTTPS, the lifetime test's fresh sockets. */
export type ProbeChannel = "quic" | "socket-p" | "socket-f" | "socket-u" | "https" | "fresh-sockets";

/** What starts a step (a step with several triggers starts on the first, once per source). */
export type ProbeTrigger =
  | { on: "run" }
  | { on: "timer"; afterMs: number }
  | { on: "step"; step: ProbeStepId }
  | { on: "decision" };

/** How long a step waits for its evidence. */
export type ProbeWait =
  /** Until the run's timeout. */
  | { until: "deadline" }
  /** Resends until the ack comes: `attempts` sends, `retryMs` apart. */
  | { until: "ack"; attempts: number; retryMs: number }
  /** After the server confirmed its burst was sent: max(minMs, rtts × the link's RTT); a probe that was sent
   *  reaches us within about one RTT of the confirmation (it left before the confirmation did). */
  | { until: "silence"; minMs: number; rtts: number }
  /** Resends every `firstGapMs`, doubling up to `maxGapMs`, until any answer; once TCP answered in T ms, no
   *  answer within tcpTimes × T + marginMs of the first send is the silence. */
  | { until: "udp-answer"; firstGapMs: number; maxGapMs: number; tcpTimes: number; marginMs: number }
  /** The lifetime test's own schedule (lifetime-client.ts, up to lifetimeMaxS). */
  | { until: "lifetime" };

export interface ProbeStep {
  id: ProbeStepId;
  /** The step's number in DESIGN §6. */
  design: "1" | "1b" | "2" | "3" | "4" | "udp-blocked";
  triggers: readonly ProbeTrigger[];
  /** The step runs once per source server (in the servers' order); "first" only with the first source. */
  perSource: "no" | "every" | "first";
  /** The source chain does not wait for it (it reports through the observations). */
  background: boolean;
  /** Runs only while no UDP answer came (no QUIC link, no UDP check answer): the TCP check says whether UDP
   *  alone is blocked. */
  onlyWithoutUdpPath: boolean;
  sends: { via: ProbeChannel; what: string; to: string };
  waitsFor: { on: ProbeChannel; what: string };
  wait: ProbeWait;
  /** The observation its evidence fills ("lifetime": the report's lifetime, not an observation). */
  fills: keyof NatObservations | "lifetime" | "none";
  /** Rules of decision.ts its evidence can settle. */
  decides: readonly NatRule[];
}

/** A step that runs once per run, in the foreground, whatever the UDP path, unless it says otherwise. */
function step(s: Omit<ProbeStep, "perSource" | "background" | "onlyWithoutUdpPath"> & Partial<ProbeStep>): ProbeStep {
  return { perSource: "no", background: false, onlyWithoutUdpPath: false, ...s };
}

const silence: ProbeWait = { until: "silence", minMs: SILENCE_MIN_MS, rtts: SILENCE_RTTS };
const hellos: ProbeWait = { until: "ack", attempts: HELLO_ATTEMPTS, retryMs: HELLO_RETRY_MS };

export const PROBE_PLAN: readonly ProbeStep[] = [
  step({
    id: "pre-probe",
    design: "1",
    triggers: [{ on: "run" }],
    sends: { via: "quic", what: `${METHOD.app.whoami}; with fewer than ${PRE_PROBE_MIN_SERVERS} IPs, ${METHOD.mesh.peers} (else ${METHOD.nat.servers}) for more`, to: "every server" },
    waitsFor: { on: "quic", what: "the mapped address each server saw" },
    wait: { until: "deadline" },
    fills: "preProbe",
    decides: ["symmetric", "udp-blocked"],
  }),
  step({
    id: "udp-check",
    design: "udp-blocked",
    triggers: [{ on: "run" }],
    background: true,
    sends: { via: "socket-u", what: "an RFC 5389 Binding Request and a QUIC packet of a reserved version (udp-check-packet.ts)", to: "every server" },
    waitsFor: { on: "socket-u", what: "a Binding Success or a QUIC Version Negotiation (QUIC-Only boxes pass only the second)" },
    wait: { until: "udp-answer", firstGapMs: UDP_CHECK_FIRST_GAP_MS, maxGapMs: UDP_CHECK_MAX_GAP_MS, tcpTimes: UDP_BLOCKED_TCP_TIMES, marginMs: UDP_BLOCKED_MARGIN_MS },
    fills: "udpPath",
    decides: ["udp-blocked"],
  }),
  step({
    id: "tcp",
    design: "udp-blocked",
    triggers: [{ on: "timer", afterMs: TCP_CHECK_AFTER_MS }, { on: "step", step: "pre-probe" }],
    background: true,
    onlyWithoutUdpPath: true,
    sends: { via: "https", what: "GET /whoami (timed: the UDP check's silence window)", to: "the first server" },
    waitsFor: { on: "https", what: "the address the server saw" },
    wait: { until: "deadline" },
    fills: "tcpWorks",
    decides: ["udp-blocked", "no-answer"],
  }),
  step({
    id: "begin",
    design: "3",
    triggers: [{ on: "run" }],
    perSource: "every",
    sends: { via: "quic", what: `${METHOD.nat.begin} {probe key K}`, to: "the source server" },
    waitsFor: { on: "quic", what: "a session token and the source's new port" },
    wait: { until: "deadline" },
    fills: "none",
    decides: [],
  }),
  step({
    id: "new-port-mapping",
    design: "1b",
    triggers: [{ on: "step", step: "begin" }],
    perSource: "first",
    background: true,
    sends: { via: "socket-p", what: "hello-port", to: "the source server's new port" },
    waitsFor: { on: "socket-p", what: "ack-port with the mapped address a same-IP/other-port destination gets" },
    wait: hellos,
    fills: "preProbe",
    decides: ["symmetric"],
  }),
  step({
    id: "passage",
    design: "2",
    triggers: [{ on: "step", step: "begin" }],
    perSource: "first",
    background: true,
    sends: { via: "quic", what: `${METHOD.nat.passage} {token}`, to: "the source server" },
    waitsFor: { on: "socket-p", what: "2 SN passage probes on P's QUIC 4-tuple" },
    wait: silence,
    fills: "passage",
    decides: ["quic-only"],
  }),
  step({
    id: "formal-mapping",
    design: "3",
    triggers: [{ on: "step", step: "begin" }],
    perSource: "every",
    sends: { via: "socket-f", what: "hello-formal (padded to 1072 bytes)", to: "the source server" },
    waitsFor: { on: "socket-f", what: "ack-formal with F's mapped address and a cookie" },
    wait: hellos,
    fills: "formal",
    decides: [],
  }),
  step({
    id: "formal",
    design: "3",
    triggers: [{ on: "step", step: "formal-mapping" }],
    perSource: "every",
    sends: { via: "quic", what: `${METHOD.nat.formal} {token, cookie, avoided IPs, proof of work}`, to: "the source server" },
    waitsFor: { on: "socket-f", what: "4 NewPort probes from the source's new port, 3 NewHost probes per delegate" },
    wait: silence,
    fills: "formal",
    decides: ["newhost-mapped-differs", "newhost-mapped-equals", "no-newhost-mapped-equals", "newport-only", "nothing", "quic-only"],
  }),
  step({
    id: "lifetime",
    design: "4",
    triggers: [{ on: "decision" }],
    sends: { via: "fresh-sockets", what: `${METHOD.nat.liveBegin}, then one hello-live per fresh socket`, to: "the first source server" },
    waitsFor: { on: "fresh-sockets", what: "one probe per socket after its delay" },
    wait: { until: "lifetime" },
    fills: "lifetime",
    decides: [],
  }),
];

/** The lifetime step runs only on request and for a class with a mapping that can be measured. */
export const LIFETIME_SKIPPED_FOR = ["udp-blocked", "quic-only"] as const;

export function probeStep(id: ProbeStepId, plan: readonly ProbeStep[] = PROBE_PLAN): ProbeStep {
  const s = plan.find((x) => x.id === id);
  if (!s) throw new Error(`the probe plan has no step ${id}`);
  return s;
}

/** Steps started by `trigger`, in plan order. */
export function stepsStartedBy(trigger: ProbeTrigger, plan: readonly ProbeStep[] = PROBE_PLAN): ProbeStep[] {
  return plan.filter((s) =>
    s.triggers.some((t) => t.on === trigger.on && (t.on !== "step" || (trigger.on === "step" && t.step === trigger.step))),
  );
}

/** The silence window of a step that waits for one, given the link's smoothed RTT. */
export function silenceMs(wait: ProbeWait, rttMs: number | undefined): number {
  if (wait.until !== "silence") throw new Error(`not a silence wait: ${wait.until}`);
  return Math.max(wait.minMs, wait.rtts * (rttMs ?? 0));
}

/** Gap before the next send of a step that waits for a UDP answer, after `sent` sends. */
export function udpCheckGapMs(wait: ProbeWait, sent: number): number {
  if (wait.until !== "udp-answer") throw new Error(`not a udp-answer wait: ${wait.until}`);
  return Math.min(wait.maxGapMs, wait.firstGapMs * 2 ** Math.max(0, sent - 1));
}

/** The UDP check's silence window from its first send, given how long the HTTPS whoami took. */
export function udpSilenceMs(wait: ProbeWait, tcpMs: number): number {
  if (wait.until !== "udp-answer") throw new Error(`not a udp-answer wait: ${wait.until}`);
  return wait.tcpTimes * tcpMs + wait.marginMs;
}
