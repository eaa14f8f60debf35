// Client side of the mapping lifetime test, STUN:Live (STUN2 seed 000 §提供的服务 2 "NAT 映射生命期", DESIGN §6
// "Mapping lifetime"; RFC 4787 §4.3). Protocol in lifetime-server.ts; bounds from lifetime-plan.ts.
//
// 1. First round: one fresh socket per delay d_i (10, 20, 30, 45, 60 … 300 s), each makes one exchange (hello, ack)
//    and gets exactly one probe d_i after the ack. All run in parallel; an inbound packet would refresh a mapping,
//    so no socket is probed twice.
// 2. The first probe that does not arrive (by its due time + LIVE_GRACE_MS) ends the round early: mappings do not
//    come back, so every longer delay would fail too. lower = the longest delay that arrived, upper = that one.
// 3. Refinement without a second wait: while round 1 runs, a pool of further fresh sockets is opened at growing
//    intervals (1 s apart at first, then ~20 % of their age). When step 2 brackets the lifetime in (lower, upper),
//    pool sockets whose age now lies inside the bracket are probed at once, each once; one grace period later the
//    bracket has shrunk to the pool's spacing. Total time ≈ the first failing delay + 2 grace periods, i.e. about
//    the lifetime itself (the seed's "≈ the longest delay, not the sum").
// 4. nat.live.end returns the age the server measured for each probe it sent (send − ack), so the bounds come from
//    one clock; lifetimeBounds / finishLifetime turn (age, arrived) samples into the report.
// Pattern measured: one outbound datagram answered at once, then silence (a UDP request/reply that went idle).
import { METHOD } from "../rpc/index.ts";
import { HELLO_ATTEMPTS, HELLO_RETRY_MS, LIFETIME_MAX_S, LIVE_MAX_SOCKETS } from "./constants.ts";
import { decodeMessage, encodeMessage } from "../wire/index.ts";
import { LiveBeginAnswerSchema, LiveEndAnswerSchema, LiveScheduleAnswerSchema } from "../wire/index.ts";
import { LiveBeginRequestSchema, LiveEndRequestSchema, LiveScheduleRequestSchema } from "../wire/index.ts";
import { expectOk, type QuicLink } from "../transport/index.ts";
import { buildControl, controlToken, decodeControl } from "./control-packet.ts";
import { finishLifetime, lifetimeBounds, planLifetimeProbes, type LifetimeSample } from "./lifetime-plan.ts";
import type { LifetimeReport } from "./probe-report.ts";
import { verifyProbe } from "./probe-packet.ts";
import { openProbeSocket, type ProbeSocket } from "./probe-sockets.ts";
import { sameEndpoint, type Endpoint } from "./source-check.ts";

/** Lifetime client: a scheduled probe that has not arrived this long after its due time counts as lost, ms.
 *  Covers timer lateness on the server (event loop) and the path. */
const LIVE_GRACE_MS = 1_000;
/** Lifetime client: the refinement pool. Sockets are opened at growing intervals (gap = max(1 s, age/5)) so
 *  that when the first failure brackets the lifetime between two first-round delays, pool sockets of every
 *  age inside the bracket exist and can be probed at once, at ~20 % resolution. */
const LIVE_POOL_MIN_GAP_MS = 1_000;
const LIVE_POOL_GAP_FRACTION = 0.2;

export const LIFETIME_PATTERN = "one outbound datagram answered at once, then idle (UDP request/reply)";

export interface LifetimeOptions {
  /** The QUIC link to the source server; it must stay up for the whole test (its keep-alives do that). */
  link: QuicLink;
  /** The source server's UDP endpoint (hellos go there, probes come from there). */
  server: Endpoint;
  /** Interface address the fresh sockets bind to. */
  localIp: string;
  /** Longest delay tried, in seconds. @default LIFETIME_MAX_S (300) */
  maxS?: number;
  /** First-round delays in seconds. @default LIFETIME_DELAYS_S */
  delaysS?: readonly number[];
  /** @default LIVE_GRACE_MS */
  graceMs?: number;
  signal?: AbortSignal;
  onProgress?: (message: string) => void;
}

export interface LifetimeSampleReport {
  /** Age of the mapping when the server sent its probe, in seconds (server clock). */
  ageS: number;
  arrived: boolean;
  round: "first" | "refine";
}

export interface LifetimeOutcome {
  report: LifetimeReport;
  samples: LifetimeSampleReport[];
  /** Probes lost below the lower bound (not expiry). */
  inconsistent: number;
  elapsedMs: number;
}

interface LiveSock {
  index: number;
  sock?: ProbeSocket;
  cookie?: Uint8Array;
  /** performance.now() when the ack arrived: the mapping's last traffic. */
  ackAt?: number;
  arrivedAt?: number;
  scheduled?: "first" | "refine";
  delayS?: number;
  onAck?: () => void;
  onProbe?: () => void;
}

/** Creation offsets of the refinement pool, in ms after the first round started: 1 s apart, then ~20 % of the
 *  offset, up to the widest gap between two first-round delays (plus the grace), capped at `max` sockets. */
export function poolOffsetsMs(delaysS: readonly number[], graceMs: number, max: number): number[] {
  let widest = 0;
  let prev = 0;
  for (const d of delaysS) {
    widest = Math.max(widest, d - prev);
    prev = d;
  }
  const until = widest * 1000 + 2 * graceMs;
  const out: number[] = [];
  // The last socket is the first one at or past `until`, so the widest bracket is covered to its lower end.
  for (let c = LIVE_POOL_MIN_GAP_MS; out.length < max; c += Math.max(LIVE_POOL_MIN_GAP_MS, c * LIVE_POOL_GAP_FRACTION)) {
    out.push(Math.round(c));
    if (c >= until) break;
  }
  return out;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, Math.max(0, ms));
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** Runs the test. Throws PeerError when the server refuses it, or the signal's reason. */
export async function measureLifetime(opts: LifetimeOptions): Promise<LifetimeOutcome> {
  const t0 = performance.now();
  const grace = opts.graceMs ?? LIVE_GRACE_MS;
  const key = crypto.getRandomValues(new Uint8Array(32));
  let delays = planLifetimeProbes({ maxS: opts.maxS ?? LIFETIME_MAX_S, delaysS: opts.delaysS });
  const pool = poolOffsetsMs(delays, grace, LIVE_MAX_SOCKETS - delays.length);
  const progress = opts.onProgress ?? (() => {});
  const begin = decodeMessage(
    LiveBeginAnswerSchema,
    expectOk(await opts.link.request(METHOD.nat.liveBegin, encodeMessage(LiveBeginRequestSchema, { probeKey: key, sockets: delays.length + pool.length }), { signal: opts.signal })),
    "LiveBeginAnswer",
  );
  const token = begin.token;
  delays = delays.filter((d) => d * 1000 <= begin.maxDelayMs);
  const socks: LiveSock[] = [];
  // Stops opening pool sockets (once round 1 bracketed the lifetime, or at the end).
  const poolStop = new AbortController();
  const poolSignal = opts.signal ? AbortSignal.any([opts.signal, poolStop.signal]) : poolStop.signal;
  const signal = opts.signal;

  function onMessage(s: LiveSock, buf: Uint8Array, from: Endpoint): void {
    if (!sameEndpoint(from, opts.server)) return;
    if (controlToken(buf)) {
      const d = decodeControl(buf, key);
      if (d.ok && d.msg.type === "ack-live" && d.msg.index === s.index && s.ackAt === undefined) {
        s.cookie = d.msg.cookie;
        s.ackAt = performance.now();
        s.onAck?.();
      }
      return;
    }
    const v = verifyProbe(buf, key);
    if (v.ok && v.source === "passage" && s.arrivedAt === undefined) {
      s.arrivedAt = performance.now();
      s.onProbe?.();
    }
  }

  /** Opens socket `index`, sends its hello until the ack comes; false when no ack came. */
  async function open(s: LiveSock): Promise<boolean> {
    s.sock = await openProbeSocket(opts.localIp, (buf, from) => onMessage(s, buf, from));
    const hello = buildControl(key, { type: "hello-live", token, index: s.index });
    const acked = new Promise<void>((r) => (s.onAck = r));
    for (let i = 0; i < HELLO_ATTEMPTS && s.ackAt === undefined && !poolSignal.aborted; i++) {
      await s.sock.send(hello, opts.server).catch(() => {});
      await Promise.race([acked, sleep(HELLO_RETRY_MS)]);
    }
    return s.ackAt !== undefined;
  }

  async function schedule(items: LiveSock[], delayMs: (s: LiveSock) => number): Promise<number> {
    if (items.length === 0) return 0;
    const req = encodeMessage(LiveScheduleRequestSchema, { token, items: items.map((s) => ({ index: s.index, cookie: s.cookie!, delayMs: delayMs(s) })) });
    const ans = decodeMessage(LiveScheduleAnswerSchema, expectOk(await opts.link.request(METHOD.nat.liveSchedule, req, { signal })), "LiveScheduleAnswer");
    return ans.accepted;
  }

  /** Resolves when `s`'s probe arrived (true) or at `until` (performance.now() time) without it (false). */
  function arrival(s: LiveSock, until: number): Promise<boolean> {
    if (s.arrivedAt !== undefined) return Promise.resolve(true);
    return new Promise((resolve) => {
      // When the deadline fires, datagrams already queued must still count: under load the timer and the
      // datagram can become ready in the same loop turn, and timers run before I/O. setImmediate runs after it.
      const t = setTimeout(() => setImmediate(() => resolve(s.arrivedAt !== undefined)), Math.max(0, until - performance.now()));
      s.onProbe = () => {
        clearTimeout(t);
        resolve(true);
      };
    });
  }

  try {
    // 1. First round.
    const first: LiveSock[] = delays.map((d, i) => ({ index: i, delayS: d }));
    socks.push(...first);
    const opened = await Promise.all(first.map(open));
    const live = first.filter((_, i) => opened[i]);
    if (live.length === 0) throw new Error("Cannot measure the mapping lifetime: no lifetime socket got an answer");
    for (const s of live) s.scheduled = "first";
    await schedule(live, (s) => s.delayS! * 1000);
    const roundStart = performance.now();
    progress(`lifetime: ${live.length} sockets probed at ${live.map((s) => s.delayS).join(", ")} s`);

    // 3 (preparation). The refinement pool, opened in the background while round 1 runs.
    const poolSocks: LiveSock[] = pool.map((_, i) => ({ index: delays.length + i }));
    socks.push(...poolSocks);
    const poolOpening = (async () => {
      for (let i = 0; i < pool.length && !poolSignal.aborted; i++) {
        await sleep(roundStart + pool[i]! - performance.now(), poolSignal).catch(() => {});
        if (poolSignal.aborted) return;
        void open(poolSocks[i]!).catch(() => {});
      }
    })();

    // 2. Watch round 1 in delay order; the first loss ends it.
    let lower = 0;
    let upper: number | null = null;
    for (const s of live) {
      const ok = await arrival(s, s.ackAt! + s.delayS! * 1000 + grace);
      if (signal?.aborted) throw signal.reason;
      if (ok) {
        lower = s.delayS!;
        progress(`lifetime: the mapping was alive after ${s.delayS} s`);
      } else {
        upper = s.delayS!;
        progress(`lifetime: the mapping was gone after ${s.delayS} s`);
        break;
      }
    }
    poolStop.abort(); // no more pool sockets
    await poolOpening;

    // 3. Refinement: pool sockets whose age is inside (lower, upper), probed now.
    if (upper !== null) {
      const now = performance.now();
      const inside = poolSocks.filter((s) => s.ackAt !== undefined && s.cookie && now - s.ackAt > lower * 1000 && now - s.ackAt < upper! * 1000);
      for (const s of inside) s.scheduled = "refine";
      if (inside.length > 0) {
        await schedule(inside, () => 0);
        progress(`lifetime: refining between ${lower} and ${upper} s with ${inside.length} sockets`);
        const until = performance.now() + grace;
        await Promise.all(inside.map((s) => arrival(s, until)));
      }
    }

    // 4. Ages from the server's clock.
    const end = decodeMessage(LiveEndAnswerSchema, expectOk(await opts.link.request(METHOD.nat.liveEnd, encodeMessage(LiveEndRequestSchema, { token }), { signal: opts.signal })), "LiveEndAnswer");
    const byIndex = new Map(socks.map((s) => [s.index, s]));
    const samples: LifetimeSampleReport[] = [];
    const planSamples: LifetimeSample[] = [];
    for (const sent of end.sent) {
      const s = byIndex.get(sent.index);
      if (!s?.scheduled) continue;
      // A probe the server sent after we stopped watching (a first-round delay beyond the failure) says nothing.
      if (s.scheduled === "first" && upper !== null && s.delayS! > upper) continue;
      const arrived = s.arrivedAt !== undefined;
      samples.push({ ageS: Math.round(sent.ageMs / 100) / 10, arrived, round: s.scheduled });
      planSamples.push({ delayS: sent.ageMs / 1000, ok: arrived });
    }
    const bounds = lifetimeBounds(planSamples);
    const est = finishLifetime(bounds);
    // Tenths of a second, rounded outwards so the reported interval still contains what was measured.
    const lowerBound = Math.floor(est.lowerBound * 10) / 10;
    const upperBound = est.upperBound === null ? null : Math.ceil(est.upperBound * 10) / 10;
    return {
      report: { seconds: upperBound === null ? lowerBound : Math.round(((lowerBound + upperBound) / 2) * 10) / 10, lowerBound, upperBound, pattern: LIFETIME_PATTERN },
      samples: samples.sort((a, b) => a.ageS - b.ageS),
      inconsistent: bounds.inconsistent,
      elapsedMs: Math.round(performance.now() - t0),
    };
  } finally {
    poolStop.abort();
    for (const s of socks) s.sock?.close();
  }
}
