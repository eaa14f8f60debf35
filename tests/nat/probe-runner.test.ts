// The probe plan (src/nat/probe-plan.ts) and its runner (probe-runner.ts) on a fake clock with scripted evidence:
// what is sent when, when each class becomes certain, and that the runner follows the plan's data.
import { describe, expect, test } from "bun:test";
import {
  HELLO_ATTEMPTS,
  HELLO_RETRY_MS,
  SILENCE_MIN_MS,
  SILENCE_RTTS,
  TCP_CHECK_AFTER_MS,
  UDP_BLOCKED_MARGIN_MS,
  UDP_BLOCKED_TCP_TIMES,
  UDP_CHECK_FIRST_GAP_MS,
  UDP_CHECK_MAX_GAP_MS,
} from "../../src/nat/constants.ts";
import type { NatRule } from "../../src/nat/decision.ts";
import { PROBE_PLAN, probeStep, silenceMs, stepsStartedBy, udpCheckGapMs, udpSilenceMs, type ProbeStep } from "../../src/nat/probe-plan.ts";
import { ProbeRunner, type ProbeRunOutcome } from "../../src/nat/probe-runner.ts";
import { FakeClock } from "../../src/contracts/fake-clock.ts";
import type { ProbeClock } from "../../src/nat/probe-io.ts";
import { FORMAL_LOCAL, LOCAL, NEW_PORT, portRestricted, RTT_MS, scriptedIo, SERVERS, type NatScript, type ScriptedIo } from "./probe-script.ts";

const TIMEOUT_MS = 6_000;

async function runScripted(script: NatScript, opts: { plan?: readonly ProbeStep[]; servers?: typeof SERVERS; contactedIps?: string[] } = {}): Promise<{ out: ProbeRunOutcome; io: ScriptedIo }> {
  const clock = new FakeClock();
  const io = scriptedIo(clock, script);
  // "Behind the queued I/O" is a zero-delay timer on the fake clock: it runs after the promise chains settle.
  const probeClock: ProbeClock = {
    now: () => clock.now(),
    setTimeout: (fn, ms) => clock.setTimeout(fn, ms),
    clearTimeout: (t) => clock.clearTimeout(t),
    defer: (fn) => void clock.setTimeout(fn, 0),
  };
  const runner = new ProbeRunner(io, probeClock, {
    servers: opts.servers ?? SERVERS,
    localIp: LOCAL.ip,
    timeoutMs: TIMEOUT_MS,
    minServers: 3,
    lifetime: false,
    startedAt: 0,
    plan: opts.plan,
    contactedIps: opts.contactedIps,
  });
  io.deliverTo(runner);
  let out: ProbeRunOutcome | undefined;
  void runner.run().then((o) => (out = o));
  for (let t = 0; t < TIMEOUT_MS + 100 && !out; t += 10) await clock.advance(10);
  if (!out) throw new Error("the run did not end by its timeout");
  return { out, io };
}

const times = (io: ScriptedIo, what: string) => io.sent.filter((s) => s.what === what).map((s) => s.at);
// Requests answer after one RTT; the formal answer comes at 4 RTT (connect, begin, hello-formal ack, nat.formal).
const FORMAL_ANSWER_AT = 4 * RTT_MS;

describe("the probe plan", () => {
  test("every rule of the decision matrix is settled by some step", () => {
    const rules: NatRule[] = ["no-answer", "udp-blocked", "symmetric", "quic-only", "newhost-mapped-differs", "newhost-mapped-equals", "no-newhost-mapped-equals", "newport-only", "nothing"];
    for (const r of rules) expect(PROBE_PLAN.some((s) => s.decides.includes(r))).toBe(true);
  });

  test("a step is only started by steps listed before it", () => {
    PROBE_PLAN.forEach((step, i) => {
      for (const t of step.triggers) if (t.on === "step") expect(PROBE_PLAN.slice(0, i).map((s) => s.id)).toContain(t.step);
    });
  });

  test("begin leads to the port mapping, passage and formal mapping, in that order; the formal step follows its mapping", () => {
    expect(stepsStartedBy({ on: "step", step: "begin" }).map((s) => s.id)).toEqual(["new-port-mapping", "passage", "formal-mapping"]);
    expect(stepsStartedBy({ on: "step", step: "formal-mapping" }).map((s) => s.id)).toEqual(["formal"]);
    expect(stepsStartedBy({ on: "run" }).map((s) => s.id)).toEqual(["pre-probe", "udp-check", "begin"]);
    expect(stepsStartedBy({ on: "decision" }).map((s) => s.id)).toEqual(["lifetime"]);
  });

  test("waits carry the protocol's constants", () => {
    expect(probeStep("new-port-mapping").wait).toEqual({ until: "ack", attempts: HELLO_ATTEMPTS, retryMs: HELLO_RETRY_MS });
    expect(probeStep("formal-mapping").wait).toEqual({ until: "ack", attempts: HELLO_ATTEMPTS, retryMs: HELLO_RETRY_MS });
    expect(probeStep("passage").wait).toEqual({ until: "silence", minMs: SILENCE_MIN_MS, rtts: SILENCE_RTTS });
    expect(probeStep("tcp").triggers).toContainEqual({ on: "timer", afterMs: TCP_CHECK_AFTER_MS });
    expect(probeStep("udp-check").wait).toEqual({
      until: "udp-answer",
      firstGapMs: UDP_CHECK_FIRST_GAP_MS,
      maxGapMs: UDP_CHECK_MAX_GAP_MS,
      tcpTimes: UDP_BLOCKED_TCP_TIMES,
      marginMs: UDP_BLOCKED_MARGIN_MS,
    });
    expect(probeStep("new-port-mapping").perSource).toBe("first");
    expect(probeStep("passage").perSource).toBe("first");
    expect(probeStep("formal").perSource).toBe("every");
  });

  test("the silence window is SILENCE_RTTS round trips, never under SILENCE_MIN_MS", () => {
    const wait = probeStep("formal").wait;
    expect(silenceMs(wait, undefined)).toBe(SILENCE_MIN_MS);
    expect(silenceMs(wait, 20)).toBe(SILENCE_MIN_MS);
    expect(silenceMs(wait, 100)).toBe(400);
    expect(() => silenceMs(probeStep("begin").wait, 10)).toThrow();
  });

  test("the UDP check resends on a doubling schedule up to its cap; its silence window scales with TCP's time", () => {
    const wait = probeStep("udp-check").wait;
    expect([1, 2, 3, 4, 5, 6].map((n) => udpCheckGapMs(wait, n))).toEqual([50, 100, 200, 200, 200, 200]);
    expect(udpSilenceMs(wait, 10)).toBe(UDP_BLOCKED_TCP_TIMES * 10 + UDP_BLOCKED_MARGIN_MS);
    expect(udpSilenceMs(wait, 400)).toBe(UDP_BLOCKED_TCP_TIMES * 400 + UDP_BLOCKED_MARGIN_MS);
    expect(() => udpCheckGapMs(probeStep("formal").wait, 1)).toThrow();
  });
});

describe("the probe runner on scripted evidence", () => {
  test("port-restricted cone: every step runs once, and 'nothing' is certain one silence window after the formal answer", async () => {
    const { out, io } = await runScripted(portRestricted());
    expect(out.decision.nat).toBe("port-restricted-cone");
    expect(out.decision.rule).toBe("nothing");
    expect(out.decision.certain).toBe(true);
    expect(out.elapsedMs).toBe(FORMAL_ANSWER_AT + SILENCE_MIN_MS);
    expect(times(io, "whoami")).toEqual([RTT_MS, RTT_MS, RTT_MS]);
    expect(times(io, "begin")).toEqual([RTT_MS]);
    expect(times(io, "hello-port")).toEqual([2 * RTT_MS]);
    expect(times(io, "passage")).toEqual([2 * RTT_MS]);
    expect(times(io, "hello-formal")).toEqual([2 * RTT_MS]);
    expect(times(io, "formal")).toEqual([3 * RTT_MS]);
    expect(io.sent.find((s) => s.what === "hello-port")!.to).toBe(`${SERVERS[0]!.ip}:${NEW_PORT}`);
    expect(io.sent.filter((s) => s.what === "https")).toEqual([]);
    expect(out.publicAddress).toBe("203.0.113.103:40000");
    expect(out.evidence.find((e) => e.test === "formal-mapping")).toMatchObject({ local: `${FORMAL_LOCAL.ip}:${FORMAL_LOCAL.port}`, mapped: "203.0.113.103:50000" });
    expect(out.evidence.at(-1)).toMatchObject({ test: "decision", rule: "nothing", atMs: FORMAL_ANSWER_AT + SILENCE_MIN_MS });
  });

  test("full cone: certain the moment a NewHost probe arrives", async () => {
    const { out } = await runScripted({ ...portRestricted(), newPortProbes: 4, newHostGetsIn: true });
    expect(out.decision.rule).toBe("newhost-mapped-differs");
    expect(out.elapsedMs).toBe(3 * RTT_MS + RTT_MS / 2);
  });

  test("a NewHost probe from a host this machine's other sockets talked to is no evidence: restricted, and the server was told to avoid it", async () => {
    // A box-wide "seen destinations" router lets such a host in (the node's own links, e.g. its self-check).
    const { out, io } = await runScripted({ ...portRestricted(), newPortProbes: 4, newHostGetsIn: true }, { contactedIps: ["198.51.100.7", "198.51.100.8"] });
    expect(out.decision.rule).toBe("newport-only");
    expect(out.decision.nat).toBe("restricted-cone");
    expect(io.avoided.length).toBeGreaterThan(0);
    for (const avoid of io.avoided) expect(avoid).toEqual(expect.arrayContaining(["198.51.100.7", "198.51.100.8"]));
  });

  test("restricted cone: NewPort but no NewHost, after the silence window", async () => {
    const { out } = await runScripted({ ...portRestricted(), newPortProbes: 4 });
    expect(out.decision.rule).toBe("newport-only");
    expect(out.decision.filtering).toBe("address-dependent");
    expect(out.elapsedMs).toBe(FORMAL_ANSWER_AT + SILENCE_MIN_MS);
  });

  test("quic-only: no passage probe and nothing on F, once both windows are over", async () => {
    const { out } = await runScripted({ ...portRestricted(), passageProbes: 0 });
    expect(out.decision.rule).toBe("quic-only");
    expect(out.elapsedMs).toBe(FORMAL_ANSWER_AT + SILENCE_MIN_MS);
  });

  test("symmetric: waits for the same-IP/other-port answer, then gives the mapping axis", async () => {
    const s = portRestricted();
    const mapped = Object.fromEntries(SERVERS.map((x, i) => [x.ip, { ip: "203.0.113.104", port: 41000 + i }]));
    const { out } = await runScripted({ ...s, mapped, portAck: { ip: "203.0.113.104", port: 42000 } });
    expect(out.decision.rule).toBe("symmetric");
    expect(out.decision.mapping).toBe("address-and-port-dependent");
    expect(out.elapsedMs).toBe(2 * RTT_MS + RTT_MS / 2);
  });

  test("symmetric while the first source's link is slow: the answers of the others wait for its port test", async () => {
    const mapped = Object.fromEntries(SERVERS.map((x, i) => [x.ip, { ip: "203.0.113.104", port: 41000 + i }]));
    const slowFirst = (ip: string) => (ip === SERVERS[0]!.ip ? 5 * RTT_MS : RTT_MS);
    const { out } = await runScripted({ ...portRestricted(), mapped, connectMs: slowFirst, portAck: { ip: "203.0.113.104", port: 42000 } });
    expect(out.decision.rule).toBe("symmetric");
    expect(out.decision.mapping).toBe("address-and-port-dependent");
  });

  test("symmetric with the port test lost: hellos as the plan says, then the decision without the axis", async () => {
    const mapped = Object.fromEntries(SERVERS.map((x, i) => [x.ip, { ip: "203.0.113.104", port: 41000 + i }]));
    const { out, io } = await runScripted({ ...portRestricted(), mapped, portAck: null });
    const hellos = times(io, "hello-port");
    expect(hellos).toEqual(Array.from({ length: HELLO_ATTEMPTS }, (_, i) => 2 * RTT_MS + i * HELLO_RETRY_MS));
    expect(out.decision.rule).toBe("symmetric");
    expect(out.decision.mapping).toBeNull();
    expect(out.elapsedMs).toBe(2 * RTT_MS + HELLO_ATTEMPTS * HELLO_RETRY_MS);
  });

  test("udp-blocked: no server answers over QUIC, the TCP step runs once and says TCP works", async () => {
    const { out, io } = await runScripted({ ...portRestricted(), mapped: {}, tcp: "203.0.113.106:5000" });
    expect(out.decision.nat).toBe("udp-blocked");
    expect(times(io, "https")).toEqual([RTT_MS]);
    expect(out.evidence.find((e) => e.test === "tcp")).toMatchObject({ mapped: "203.0.113.106:5000" });
    expect(out.elapsedMs).toBe(RTT_MS + RTT_MS / 2);
  });

  test("udp-blocked while QUIC hangs: decided when the UDP check stayed silent for 3 × TCP's time + the margin, not at the timeout", async () => {
    const tcpMs = 40;
    const { out, io } = await runScripted({ ...portRestricted(), mapped: {}, quicHangs: true, tcp: "203.0.113.106:5000", tcpMs });
    expect(out.decision).toMatchObject({ nat: "udp-blocked", rule: "udp-blocked", certain: true });
    // TCP starts at TCP_CHECK_AFTER_MS; the window counts from the first UDP request (t = 0).
    expect(times(io, "https")).toEqual([TCP_CHECK_AFTER_MS]);
    const window = UDP_BLOCKED_TCP_TIMES * tcpMs + UDP_BLOCKED_MARGIN_MS;
    expect(out.elapsedMs).toBe(Math.max(TCP_CHECK_AFTER_MS + tcpMs, window));
    // Each server got the UDP check's requests on the short schedule (0, 50, 150, 350 ms …) until then.
    const sends = [...new Set(times(io, "udp-check"))];
    expect(sends).toEqual([0, 50, 150, 350, 550, 750, 950, 1150].filter((t) => t < window));
    expect(io.sent.filter((s) => s.what === "udp-check" && s.at === 0)).toHaveLength(SERVERS.length);
    expect(out.evidence.find((e) => e.test === "udp-check")).toMatchObject({ answer: null, windowMs: window, tcpMs });
  });

  test("udp-blocked behind a slow TCP path: the window grows with TCP's time", async () => {
    const tcpMs = 900;
    const { out } = await runScripted({ ...portRestricted(), mapped: {}, quicHangs: true, tcp: "203.0.113.106:5000", tcpMs });
    expect(out.decision.nat).toBe("udp-blocked");
    expect(out.elapsedMs).toBe(UDP_BLOCKED_TCP_TIMES * tcpMs + UDP_BLOCKED_MARGIN_MS);
  });

  test("QUIC-Only path: the UDP check's QUIC answer keeps a slow QUIC handshake from being taken for udp-blocked", async () => {
    const { out, io } = await runScripted({ ...portRestricted(), passageProbes: 0, udpCheck: "quic", connectMs: 1_500, tcp: "203.0.113.103:5000", tcpMs: 10 });
    expect(out.decision.rule).toBe("quic-only");
    expect(out.evidence.find((e) => e.test === "udp-check")).toMatchObject({ answer: "quic" });
    // The answer came before TCP_CHECK_AFTER_MS: no HTTPS request at all.
    expect(times(io, "https")).toEqual([]);
    expect(out.elapsedMs).toBeGreaterThan(1_500);
  });

  test("a QUIC link that comes up inside the window proves UDP even when the check gets no answer", async () => {
    const { out } = await runScripted({ ...portRestricted(), udpCheck: null, connectMs: 150, tcp: "203.0.113.103:5000", tcpMs: 10 });
    expect(out.decision.rule).toBe("nothing");
    expect(out.evidence.some((e) => e.test === "udp-check")).toBe(false);
  });

  test("neither UDP nor TCP answers: no early decision, the run waits out its timeout", async () => {
    const { out } = await runScripted({ ...portRestricted(), mapped: {}, quicHangs: true, tcp: null });
    expect(out.decision.rule).toBe("no-answer");
    expect(out.elapsedMs).toBe(TIMEOUT_MS);
  });

  test("no formal ack: three hellos, then the run waits out its timeout", async () => {
    const { out, io } = await runScripted({ ...portRestricted(), formalMapped: null });
    expect(times(io, "hello-formal")).toEqual(Array.from({ length: HELLO_ATTEMPTS }, (_, i) => 2 * RTT_MS + i * HELLO_RETRY_MS));
    expect(times(io, "formal")).toEqual([]);
    expect(out.decision.certain).toBe(false);
    expect(out.elapsedMs).toBe(TIMEOUT_MS);
  });

  test("delegates that sent only from known IPs: the next server becomes the source, without a second passage", async () => {
    const known = (src: { ip: string }) =>
      src.ip === SERVERS[0]!.ip ? [{ nodeId: "c".repeat(64), fromIp: SERVERS[1]!.ip, sent: 3, error: "" }] : [{ nodeId: "d".repeat(64), fromIp: "198.51.100.9", sent: 3, error: "" }];
    const { out, io } = await runScripted({ ...portRestricted(), delegates: known });
    expect(io.sent.filter((s) => s.what === "begin").map((s) => s.to)).toEqual([`${SERVERS[0]!.ip}:7788`, `${SERVERS[1]!.ip}:7788`]);
    expect(times(io, "passage")).toHaveLength(1);
    expect(times(io, "hello-port")).toHaveLength(1);
    expect(out.decision.rule).toBe("nothing");
    expect(out.decision.certain).toBe(true);
  });

  test("the runner follows the plan's data: fewer hello attempts, and no passage step", async () => {
    const plan = PROBE_PLAN.filter((s) => s.id !== "passage").map((s) => (s.id === "formal-mapping" ? { ...s, wait: { until: "ack" as const, attempts: 1, retryMs: 100 } } : s));
    const { out, io } = await runScripted({ ...portRestricted(), formalMapped: null }, { plan });
    expect(times(io, "hello-formal")).toEqual([2 * RTT_MS]);
    expect(times(io, "passage")).toEqual([]);
    expect(out.elapsedMs).toBe(TIMEOUT_MS);
  });
});
