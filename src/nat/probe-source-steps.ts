// DESIGN §6 steps 1b–3 of the probe plan (probe-plan.ts), on one source server after another: begin, then the
// same-IP/other-port mapping and the passage test (first source only, in the background), then the formal
// socket's mapping and the formal step. When the delegates sent only from IPs this host talks to, the next
// server becomes the source. Datagrams reach onPortAck / onProbe already authenticated.
import { errorLine } from "../errors.ts";
import { MAX_AVOID_IPS } from "./constants.ts";
import type { PassageObservation } from "./decision.ts";
import { probeStep, silenceMs, stepsStartedBy, type ProbeStep, type ProbeStepId } from "./probe-plan.ts";
import { sleepOn, type NewHostConsentInit, type ProbeServer, type ProbeStepOptions, type ServerLink } from "./probe-io.ts";

/** Would-be delegates asked for a consent token per formal step (the source picks its delegates among them). */
const MAX_CONSENT_ASKS = 6;
/** How long the consent requests may take, in ms: one TLS handshake and request, in parallel with the proof. */
const CONSENT_TIMEOUT_MS = 2_000;
import type { ProbeSource } from "./probe-packet.ts";
import type { FormalAttempt, ProbeRunState } from "./probe-run-state.ts";
import { checkProbeSource, formatEndpoint, normalizeIp, sameIp, type Endpoint } from "./source-check.ts";

/** One source server's chain of steps (begin → new-port-mapping, passage, formal-mapping → formal). */
interface SourceContext {
  server: ProbeServer;
  link: ServerLink;
  first: boolean;
  hasNext: boolean;
  /** Deadline of begin and passage: taken when the source's chain starts. */
  step: ProbeStepOptions;
  token?: Uint8Array;
  newPort?: number;
  acked?: { attempt: FormalAttempt; mapped: Endpoint; cookie: Uint8Array };
  /** Delegates that sent from an IP this host never talks to; -1 while the step did not get that far. */
  clean: number;
}

export async function runSources(st: ProbeRunState, first: ProbeStepId): Promise<void> {
  const candidates = [...st.servers];
  let isFirst = true;
  for (let i = 0; i < candidates.length; i++) {
    const s = candidates[i]!;
    if (st.decided) return;
    // The first source's same-IP/other-port test is on its way from now on, even while its QUIC link is being
    // set up: a symmetric decision from faster servers' answers waits for it (ProbeRunState.evaluate).
    if (isFirst) st.portTestPending = true;
    const link = await st.connect(s);
    if (!link || st.decided) {
      if (isFirst && !st.portTest) {
        st.portTestPending = false;
        st.evaluate();
      }
      continue;
    }
    st.source ??= { server: s, link };
    const ctx: SourceContext = { server: s, link, first: isFirst, hasNext: i < candidates.length - 1, step: st.step, clean: -1 };
    isFirst = false;
    if (ctx.first) st.portTestPending = true;
    try {
      if (await sourceStep(st, probeStep(first, st.plan), ctx)) await chain(st, first, ctx);
    } catch (err) {
      if (ctx.first && !st.portTest) st.portTestPending = false;
      st.evaluate();
      throw err;
    }
    if (ctx.clean !== 0) return; // NewHost was tested (or the step could not run at all)
    st.progress("new-host", `the delegates of ${formatEndpoint(s)} sent only from IPs this host talks to; trying another source`);
  }
}

/** Runs the per-source steps that follow `after`: background ones start and are left to report; the others run
 *  in plan order, each one's own followers after it. */
async function chain(st: ProbeRunState, after: ProbeStepId, ctx: SourceContext): Promise<void> {
  for (const step of stepsStartedBy({ on: "step", step: after }, st.plan)) {
    if (step.perSource === "no" || (step.perSource === "first" && !ctx.first)) continue;
    if (step.background) {
      void sourceStep(st, step, ctx).catch((err) => st.init.log?.debug(`${step.id} failed`, { error: errorLine(err) }));
      continue;
    }
    if (!(await sourceStep(st, step, ctx))) return;
    await chain(st, step.id, ctx);
    return;
  }
}

/** One per-source step; false stops the chain. */
async function sourceStep(st: ProbeRunState, step: ProbeStep, ctx: SourceContext): Promise<boolean> {
  switch (step.id) {
    case "begin": {
      let begin: { token: Uint8Array; newPort: number };
      try {
        begin = await ctx.link.begin(ctx.step);
      } catch (err) {
        // This server cannot be a source: say why, and let the next one be tried.
        if (!st.decided) st.note({ test: "begin", server: formatEndpoint(ctx.server), error: errorLine(err) });
        if (ctx.first && !st.portTest) st.portTestPending = false;
        st.evaluate();
        ctx.clean = 0;
        return false;
      }
      ctx.token = begin.token;
      ctx.newPort = begin.newPort;
      return true;
    }
    case "new-port-mapping":
      await portMapping(st, step, ctx);
      return true;
    case "passage":
      passageTest(st, step, ctx);
      return true;
    case "formal-mapping":
      return formalMapping(st, step, ctx);
    case "formal":
      await formal(st, step, ctx);
      return true;
    default:
      throw new Error(`step ${step.id} does not run per source`);
  }
}

/** 1b. Same IP, other port: the mapping P gets there. */
async function portMapping(st: ProbeRunState, step: ProbeStep, ctx: SourceContext): Promise<void> {
  const portServer = { ip: ctx.server.ip, port: ctx.newPort! };
  const token = ctx.token!;
  st.portTest = { server: portServer, done: false };
  await sendUntilAck(
    st,
    step,
    () => st.io.sendHelloPort(token, portServer),
    () => st.portTest?.done ?? true,
    (wake) => (st.portTest!.onAck = wake),
  );
  st.portTestPending = false;
  if (st.portTest && !st.portTest.done) {
    st.portTest.done = true;
    if (!st.decided) st.note({ test: "new-port-mapping", server: formatEndpoint(portServer), mapped: null });
  }
  st.evaluate();
}

/** 2. Passage on P's 4-tuple. */
function passageTest(st: ProbeRunState, step: ProbeStep, ctx: SourceContext): void {
  const k = formatEndpoint(ctx.server);
  st.passageServer = ctx.server;
  const passage: PassageObservation = { rawProbes: 0, quicWorks: true, finished: false };
  st.obs.passage = passage;
  void ctx.link
    .passage(ctx.token!, ctx.step)
    .then((sent) => {
      st.note({ test: "passage", server: k, sent, receivedSoFar: passage.rawProbes });
      st.progress("passage", `${k} sent ${sent} raw probes on the QUIC 4-tuple; ${passage.rawProbes} arrived so far`);
      st.after(silenceMs(step.wait, ctx.link.rttMs), () => {
        passage.finished = true;
        st.evaluate();
      });
    })
    .catch((err) => {
      if (!st.decided) st.note({ test: "passage", server: k, sent: null, received: passage.rawProbes, error: errorLine(err) });
    });
}

/** 3a. A new unconnected socket F learns its mapping and a cookie from the source server. */
async function formalMapping(st: ProbeRunState, step: ProbeStep, ctx: SourceContext): Promise<boolean> {
  const k = formatEndpoint(ctx.server);
  const token = ctx.token!;
  const attempt: FormalAttempt = {
    server: ctx.server,
    socket: await st.io.openFormalSocket({
      onAck: (from, mapped, cookie) => onFormalAck(st, attempt, from, mapped, cookie),
      onProbe: (source, from) => onProbe(st, "formal", source, from, attempt),
    }),
    obs: { localAddress: null, mapped: null, newPort: 0, newHostFrom: [], newHostDelegates: 0, finished: false },
  };
  attempt.obs.localAddress = attempt.socket.local;
  st.attempts.push(attempt);
  let acked: { mapped: Endpoint; cookie: Uint8Array } | null = null;
  await sendUntilAck(
    st,
    step,
    () => attempt.socket.sendHello(token, ctx.server),
    () => acked !== null,
    (wake) =>
      (attempt.onAck = (mapped, cookie) => {
        acked = { mapped, cookie };
        wake();
      }),
  );
  if (st.decided) return false;
  if (!acked) {
    st.note({ test: "formal-mapping", server: k, local: formatEndpoint(attempt.socket.local), mapped: null });
    return false;
  }
  const { mapped, cookie } = acked as { mapped: Endpoint; cookie: Uint8Array };
  attempt.obs.mapped = mapped;
  attempt.contacted = st.contactedBehind(mapped);
  st.obs.formal = attempt.obs;
  ctx.acked = { attempt, mapped, cookie };
  st.note({ test: "formal-mapping", server: k, local: formatEndpoint(attempt.socket.local), mapped: formatEndpoint(mapped) });
  st.progress("formal", `new socket ${formatEndpoint(attempt.socket.local)} is ${formatEndpoint(mapped)} outside`);
  st.evaluate();
  return true;
}

/** 3b. NewPort from the source, NewHost from its delegates, towards F's proven mapping. */
async function formal(st: ProbeRunState, step: ProbeStep, ctx: SourceContext): Promise<void> {
  const k = formatEndpoint(ctx.server);
  const { attempt, mapped, cookie } = ctx.acked!;
  const [proof, consents] = await Promise.all([st.io.proveNewHost(mapped, st.signal), askConsents(st, ctx, mapped)]);
  await st.learning;
  if (st.decided) return;
  const contacted = st.contactedBehind(mapped);
  const avoidIps = [...contacted].slice(0, MAX_AVOID_IPS);
  const ans = await ctx.link.formal({ token: ctx.token!, cookie, avoidIps, proof, consents }, st.step);
  const clean = ans.delegates.filter((d) => d.sent > 0 && d.fromIp !== "" && !contacted.has(normalizeIp(d.fromIp))).length;
  st.note({ test: "new-port", server: k, sent: ans.newPortSent, receivedSoFar: attempt.obs.newPort });
  st.note({
    test: "new-host",
    server: k,
    delegates: ans.delegates.map((d) => ({ node: d.nodeId.slice(0, 16), from: d.fromIp || null, sent: d.sent, ...(d.error ? { error: d.error } : {}) })),
    consentsFrom: consents.map((c) => c.serverIp),
    usable: clean,
    receivedSoFar: attempt.obs.newHostFrom.length,
  });
  st.progress("new-host", `${ans.delegates.length} delegate(s) sent NewHost probes, ${clean} from IPs this host never talks to`);
  attempt.obs.newHostDelegates = clean;
  ctx.clean = clean;
  if (clean === 0 && ctx.hasNext) return;
  st.after(silenceMs(step.wait, ctx.link.rttMs), () => {
    attempt.obs.finished = true;
    st.evaluate();
  });
  st.evaluate();
}

/** Consent tokens for `mapped` from the source's peers (its would-be delegates), over HTTPS: TCP leaves no UDP
 *  trace towards them, so their NewHost probes still prove something (source-check.ts R4). */
async function askConsents(st: ProbeRunState, ctx: SourceContext, mapped: Endpoint): Promise<NewHostConsentInit[]> {
  if (!st.io.newHostConsents) return [];
  const peers = await ctx.link.natServers(st.step).catch(() => [] as Endpoint[]);
  const seen = new Set<string>([normalizeIp(ctx.server.ip)]);
  const ask: Endpoint[] = [];
  for (const s of [...peers, ...st.servers]) {
    const ip = normalizeIp(s.ip);
    if (seen.has(ip) || ask.length >= MAX_CONSENT_ASKS) continue;
    seen.add(ip);
    ask.push(s);
  }
  const deadline = AbortSignal.any([st.signal, AbortSignal.timeout(CONSENT_TIMEOUT_MS)]);
  const got = await st.io.newHostConsents(ask, mapped, deadline).catch(() => [] as NewHostConsentInit[]);
  return got;
}

/** Sends a hello as the step's wait says until `done()`; `arm` gets the function that ends the wait early. */
async function sendUntilAck(st: ProbeRunState, step: ProbeStep, send: () => Promise<void>, done: () => boolean, arm: (wake: () => void) => void): Promise<void> {
  if (step.wait.until !== "ack") throw new Error(`step ${step.id} does not wait for an ack`);
  let wake: () => void = () => {};
  const woken = new Promise<void>((r) => (wake = r));
  arm(wake);
  for (let i = 0; i < step.wait.attempts && !done() && !st.decided; i++) {
    await send().catch(() => {});
    await Promise.race([woken, sleepOn(st.clock, step.wait.retryMs)]);
  }
}

/** ack-port on P: the mapping the source's new port saw. */
export function onPortAck(st: ProbeRunState, from: Endpoint, mapped: Endpoint): void {
  if (st.decided) return;
  const pt = st.portTest;
  if (!pt || pt.done || !sameIp(from.ip, pt.server.ip) || from.port !== pt.server.port) return;
  pt.done = true;
  st.portTestPending = false;
  st.obs.preProbe = [...st.obs.preProbe, { server: pt.server, mapped }];
  st.note({ test: "new-port-mapping", server: formatEndpoint(pt.server), mapped: formatEndpoint(mapped) });
  pt.onAck?.();
  st.evaluate();
}

function onFormalAck(st: ProbeRunState, a: FormalAttempt, from: Endpoint, mapped: Endpoint, cookie: Uint8Array): void {
  if (st.decided) return;
  if (sameIp(from.ip, a.server.ip) && from.port === a.server.port) a.onAck?.(mapped, cookie);
}

/** A probe with this run's MAC on P ("quic") or on a formal socket; counted only if its source passes. */
export function onProbe(st: ProbeRunState, socket: "quic" | "formal", source: ProbeSource, from: Endpoint, a?: FormalAttempt): void {
  if (st.decided) return;
  if (socket === "quic") {
    const server = st.passageServer;
    const check = server ? checkProbeSource(source, from, { sourceServer: server, arrivedOn: "quic", contactedIps: st.contacted }) : null;
    if (!check?.ok || !st.obs.passage) {
      st.note({ test: "probe-ignored", socket: "quic", source, from: formatEndpoint(from), reason: check && !check.ok ? check.reason : "no passage test running" });
      return;
    }
    st.obs.passage.rawProbes++;
    if (st.obs.passage.rawProbes === 1) st.note({ test: "passage", server: formatEndpoint(server!), received: formatEndpoint(from) });
    st.evaluate();
    return;
  }
  if (!a) return;
  const check = checkProbeSource(source, from, { sourceServer: a.server, arrivedOn: "formal", contactedIps: a.contacted ?? st.contacted });
  if (!check.ok) {
    st.note({ test: "probe-ignored", socket: "formal", source, from: formatEndpoint(from), reason: check.reason });
    return;
  }
  const server = formatEndpoint(a.server);
  if (source === "newPort") {
    a.obs.newPort++;
    if (a.obs.newPort === 1) {
      st.note({ test: "new-port", server, received: formatEndpoint(from) });
      st.progress("formal", `NewPort probe from ${formatEndpoint(from)} got in`);
    }
  } else if (source === "newHost") {
    const first = !a.obs.newHostFrom.some((e) => sameIp(e.ip, from.ip) && e.port === from.port);
    a.obs.newHostFrom = [...a.obs.newHostFrom, from];
    if (first) {
      st.note({ test: "new-host", server, received: formatEndpoint(from) });
      st.progress("new-host", `NewHost probe from ${formatEndpoint(from)} got in`);
    }
  }
  st.evaluate();
}
