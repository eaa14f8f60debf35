// The punch strategy table (src/punch/punch-recipes.ts) and runAttempt interpreting it (punch-attempt.ts) on a
// fake clock with a scripted socket: who sends what when, when the dialer starts, which socket it uses. The
// NAT behaviour itself is the lab's (tests/lab/punch-grid.test.ts).
import { METHOD } from "../../src/rpc/methods.ts";
import { create } from "@bufbuild/protobuf";
import { describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import type { NatClassName } from "../../src/nat/class.ts";
import { runAttempt, type AttemptIo, type AttemptOutcome, type PeerAddr } from "../../src/punch/punch-attempt.ts";
import {
  PUNCH_ATTEMPT_TIMEOUT_MS,
  PUNCH_DIAL_WAIT_MS,
  PUNCH_FIRST_HANDSHAKE_TIMEOUT_MS,
  PUNCH_OPEN_FAST_INTERVAL_MS,
  PUNCH_OPEN_FAST_MS,
  PUNCH_OPEN_SLOW_INTERVAL_MS,
  PUNCH_SECOND_SENDER_DELAY_MS,
  PUNCH_SECOND_SENDER_MIN_MS,
  PUNCH_SECOND_SENDER_RTTS,
  SPRAY_ATTEMPT_TIMEOUT_MS,
  SPRAY_START_DELAY_MS,
  SPRAY_TAIL_MS,
} from "../../src/punch/constants.ts";
import { SPRAY_SOCKETS } from "../../src/punch/constants.ts";
import type { PunchOffer } from "../../src/punch/punch-info.ts";
import { blindDialWaitMs, secondSenderDelayMs, sendOrder, useFreshSocket, type SendOrder } from "../../src/punch/punch-order.ts";
import { encodePunchPacket, PUNCH_PACKET_TYPE } from "../../src/punch/punch-packet.ts";
import { attemptBudgetMs, dialWaitsForOpener, handshakeTimeoutMs, openerGapMs, PUNCH_RECIPES, sprayRoundPorts, type PunchableStrategy } from "../../src/punch/punch-recipes.ts";
import { sprayParamsFor, type SprayParams } from "../../src/punch/punch-strategy.ts";
import type { QuicLink } from "../../src/transport/quic/link.ts";
import { encodeMessage, Status } from "../../src/wire/codec.ts";
import { EnvelopeSchema } from "../../src/wire/gen/findings_pb.ts";
import { PunchHelloAnswerSchema } from "../../src/wire/gen/punch-link_pb.ts";
import { FakeClock } from "../../src/contracts/fake-clock.ts";
import { QUIC_HANDSHAKE_TIMEOUT_MS } from "../../src/transport/quic/constants.ts";
import { idOf } from "./punch-helpers.ts";

const STRATEGIES = Object.keys(PUNCH_RECIPES) as PunchableStrategy[];
const CLASSES: (NatClassName | null)[] = ["public", "full-cone", "restricted-cone", "port-restricted-cone", "symmetric", "udp-firewall", "quic-only", "udp-blocked", null];

describe("the strategy table", () => {
  test("has a row for every strategy that can connect; only the spray dialer opens many sockets", () => {
    expect(STRATEGIES.sort()).toEqual(["direct", "simultaneous", "sym-to-cone-spray", "sym-to-restricted"]);
    for (const s of STRATEGIES) {
      const r = PUNCH_RECIPES[s];
      expect(r.listen.sockets.kind === "spray").toBe(false);
      expect(r.dial.sockets.kind === "spray").toBe(s === "sym-to-cone-spray");
      expect(r.listen.waitsFor).toBe("hello");
    }
    expect(sprayParamsFor({ port: 40000, portDelta: null }).sockets).toBe(SPRAY_SOCKETS);
  });

  test("budgets: the fixed deadline, and a spray's probe round plus its tail, capped", () => {
    expect(attemptBudgetMs(PUNCH_RECIPES.direct.budget, null)).toBe(PUNCH_ATTEMPT_TIMEOUT_MS);
    const spray = sprayParamsFor({ port: 40000, portDelta: null });
    expect(attemptBudgetMs(PUNCH_RECIPES["sym-to-cone-spray"].budget, spray)).toBe(SPRAY_START_DELAY_MS + spray.probes * spray.probeIntervalMs + SPRAY_TAIL_MS);
    expect(attemptBudgetMs(PUNCH_RECIPES["sym-to-cone-spray"].budget, { ...spray, probes: 100_000 })).toBe(SPRAY_ATTEMPT_TIMEOUT_MS);
  });

  test("agrees with the send order: a silent side has no openers, and only main-or-fresh rows ever get a fresh socket", () => {
    const orders: SendOrder[] = ["first", "second", "together", "silent"];
    for (const strategy of STRATEGIES) {
      for (const role of ["dial", "listen"] as const) {
        const side = role === "dial" ? PUNCH_RECIPES[strategy].dial : PUNCH_RECIPES[strategy].listen;
        for (const myNat of CLASSES) {
          for (const peerNat of CLASSES) {
            const sides = { strategy, role, myNat, peerNat };
            if (side.openers.kind === "none") expect(sendOrder(sides)).toBe("silent");
            if (side.sockets.kind !== "main-or-fresh") for (const o of orders) expect(useFreshSocket(sides, o)).toBe(false);
          }
        }
      }
    }
  });

  test("openers are fast for the first second, then slow", () => {
    const open = PUNCH_RECIPES.simultaneous.dial.openers;
    if (open.kind !== "to-peer") throw new Error("simultaneous sends openers to the peer");
    expect(openerGapMs(open.schedule, 0)).toBe(PUNCH_OPEN_FAST_INTERVAL_MS);
    expect(openerGapMs(open.schedule, PUNCH_OPEN_FAST_MS - 1)).toBe(PUNCH_OPEN_FAST_INTERVAL_MS);
    expect(openerGapMs(open.schedule, PUNCH_OPEN_FAST_MS)).toBe(PUNCH_OPEN_SLOW_INTERVAL_MS);
  });

  test("the dialer waits for an opener in a simultaneous open, and in sym-to-restricted unless it sends second", () => {
    expect(dialWaitsForOpener(PUNCH_RECIPES.direct.dial.start, "first")).toBe(false);
    expect(dialWaitsForOpener(PUNCH_RECIPES.simultaneous.dial.start, "second")).toBe(true);
    expect(dialWaitsForOpener(PUNCH_RECIPES["sym-to-restricted"].dial.start, "second")).toBe(false);
    expect(dialWaitsForOpener(PUNCH_RECIPES["sym-to-restricted"].dial.start, "together")).toBe(true);
    expect(dialWaitsForOpener(PUNCH_RECIPES["sym-to-cone-spray"].dial.start, "together")).toBe(false);
  });

  test("a spray round probes predicted ports first (wrapped into the range), then distinct random ones", () => {
    const plan: SprayParams = { sockets: 4, probes: 10, portMin: 1024, portMax: 65535, probeIntervalMs: 5, predicted: { base: 65530, delta: 3, count: 4 }, odds: 0 };
    const ports = sprayRoundPorts(plan);
    expect(ports.slice(0, 4)).toEqual([65533, 1024, 1027, 1030]);
    expect(new Set(ports).size).toBe(10);
    for (const p of ports) expect(p >= 1024 && p <= 65535).toBe(true);
    expect(sprayRoundPorts({ ...plan, portMin: 2000, portMax: 2005, predicted: null })).toHaveLength(6);
  });
});

// ---- the interpreter ----

const PEER = { ip: "203.0.113.7", port: 41000 };
const peerToken = new Uint8Array(16).fill(7);

function offer(strategy: PunchableStrategy, role: "dial" | "listen", peerNat: NatClassName | null, spray: SprayParams | null = null): PunchOffer {
  return {
    attemptId: new Uint8Array(16).fill(1),
    attemptHex: "01".repeat(16),
    peerId: idOf(2),
    peerKind: "app:chat",
    ...PEER,
    peerToken,
    ownToken: new Uint8Array(16).fill(9),
    peerNat,
    peerSpki: "ab".repeat(32),
    strategy,
    role,
    listenerOpens: true,
    expectSuccess: true,
    reason: "test",
    spray,
  };
}

function fakeLink(): QuicLink {
  const answer = (method: string, payload: Uint8Array) => create(EnvelopeSchema, { method, status: Status.OK, payload });
  return {
    remote: PEER,
    connectionId: "c",
    direction: "out",
    pinned: true,
    rttMs: 1,
    closed: false,
    request: async (method) => answer(method, method === METHOD.punchLink.hello ? encodeMessage(PunchHelloAnswerSchema, { token: peerToken, nodeId: idOf(2) }) : new Uint8Array()),
    openStream: async () => {
      throw new Error("no streams on a fake link");
    },
    close: async () => {},
  };
}

interface Scripted {
  io: AttemptIo;
  /** [time, socket, first byte, port] of every raw datagram. */
  raw: { at: number; sock: "main" | "fresh"; byte0: number; port: number }[];
  dials: { at: number; sock: "main" | "fresh"; to: PeerAddr }[];
  /** The handshake timeout each dial was given. */
  handshakeTimeouts: (number | null)[];
  opened: number[];
  opener(from: PeerAddr): void;
  hello(): void;
}

function scripted(clock: FakeClock, dialWorks: boolean): Scripted {
  const s: Omit<Scripted, "io"> & { io?: AttemptIo } = { raw: [], dials: [], handshakeTimeouts: [], opened: [], opener: () => {}, hello: () => {} };
  let helloDone: (l: QuicLink) => void = () => {};
  const hello = new Promise<QuicLink>((r) => (helloDone = r));
  s.hello = () => helloDone(fakeLink());
  const socket = (name: "main" | "fresh") => ({
    sendRaw: (bytes: Uint8Array, port: number) => void s.raw.push({ at: clock.now(), sock: name, byte0: bytes[0]!, port }),
    dial: (to: PeerAddr, opts: { signal?: AbortSignal; timeoutMs?: number }) => {
      s.dials.push({ at: clock.now(), sock: name, to });
      s.handshakeTimeouts.push(opts.timeoutMs ?? null);
      if (dialWorks) return Promise.resolve(fakeLink());
      return new Promise<QuicLink>((_, reject) => {
        const t = opts.timeoutMs === undefined ? undefined : clock.setTimeout(() => reject(new Error("handshake timed out")), opts.timeoutMs);
        opts.signal?.addEventListener("abort", () => (clock.clearTimeout(t), reject(opts.signal!.reason)), { once: true });
      });
    },
  });
  s.io = {
    main: socket("main"),
    openSocket: async (port) => (s.opened.push(port), { ...socket("fresh"), adopt() {}, release: async () => {} }),
    waitHello: () => hello,
    onOpener: (fn) => ((s.opener = fn), () => {}),
    bindHost: "127.0.0.1",
    selfId: idOf(1),
  };
  return s as Scripted;
}

async function attempt(
  clock: FakeClock,
  s: Scripted,
  o: PunchOffer,
  nat: NatClassName,
  timeoutMs?: number,
  script: (t: number) => void = () => {},
  side: { requested?: boolean; nodeRttMs?: number } = {},
): Promise<AttemptOutcome> {
  let out: AttemptOutcome | undefined;
  void runAttempt(s.io, o, { nat, timeoutMs, clock, ...side }).then((r) => (out = r));
  for (let t = 0; t < 20_000 && !out; t += 10) {
    script(clock.now());
    await clock.advance(10);
  }
  return out!;
}

const openerTimes = (s: Scripted) => s.raw.filter((r) => r.byte0 === 0x24).map((r) => r.at);

describe("runAttempt interprets the row", () => {
  test("direct, open listener: sends nothing and takes the hello", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, false);
    const out = await attempt(clock, s, offer("direct", "listen", "port-restricted-cone"), "public", undefined, (t) => t === 100 && s.hello());
    expect(out.result.connected).toBe(true);
    expect(s.raw).toEqual([]);
    expect(s.dials).toEqual([]);
  });

  test("direct dialer: openers and the handshake at once", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, true);
    const out = await attempt(clock, s, offer("direct", "dial", "public"), "port-restricted-cone");
    expect(out.result.connected).toBe(true);
    expect(s.dials.map((d) => d.at)).toEqual([0]);
    expect(openerTimes(s)[0]).toBe(0);
  });

  test("simultaneous, equal ranks: openers fast then slow; the dial waits for the first opener, at most PUNCH_DIAL_WAIT_MS", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, false);
    const out = await attempt(clock, s, offer("simultaneous", "dial", "port-restricted-cone"), "port-restricted-cone", 2000);
    expect(out.result.connected).toBe(false);
    expect(out.result.reason).toContain("no link within 2000 ms");
    const times = openerTimes(s);
    const fastCount = PUNCH_OPEN_FAST_MS / PUNCH_OPEN_FAST_INTERVAL_MS + 1;
    expect(times.slice(0, fastCount)).toEqual(Array.from({ length: fastCount }, (_, i) => i * PUNCH_OPEN_FAST_INTERVAL_MS));
    expect(times.slice(fastCount)).toEqual([1250, 1500, 1750]);
    expect(s.dials[0]!.at).toBe(PUNCH_DIAL_WAIT_MS);

    const clock2 = new FakeClock();
    const s2 = scripted(clock2, true);
    await attempt(clock2, s2, offer("simultaneous", "dial", "port-restricted-cone"), "port-restricted-cone", undefined, (t) => t === 120 && s2.opener({ ip: PEER.ip, port: 41999 }));
    // The peer's openers came from another port: the dial goes there.
    expect(s2.dials).toEqual([{ at: 120, sock: "main", to: { ip: PEER.ip, port: 41999 } }]);
  });

  test("simultaneous, P-RC sending second to an RC: waits its turn, then punches from a fresh socket", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, true);
    const out = await attempt(clock, s, offer("simultaneous", "dial", "restricted-cone"), "port-restricted-cone");
    expect(out.result.connected).toBe(true);
    expect(s.opened).toEqual([0]);
    expect(s.raw.every((r) => r.sock === "fresh" && r.at >= PUNCH_SECOND_SENDER_DELAY_MS)).toBe(true);
    expect(s.raw[0]!.at).toBe(PUNCH_SECOND_SENDER_DELAY_MS);
    expect(s.dials[0]).toMatchObject({ sock: "fresh", at: PUNCH_SECOND_SENDER_DELAY_MS + PUNCH_DIAL_WAIT_MS });
  });

  test("a second sender that asked for the punch is already late: it waits only the minimum; a pushed one adds node round trips", async () => {
    expect(secondSenderDelayMs(true, undefined)).toBe(PUNCH_SECOND_SENDER_MIN_MS);
    expect(secondSenderDelayMs(true, 80)).toBe(PUNCH_SECOND_SENDER_MIN_MS);
    expect(secondSenderDelayMs(false, 10)).toBe(PUNCH_SECOND_SENDER_MIN_MS + PUNCH_SECOND_SENDER_RTTS * 10);
    expect(secondSenderDelayMs(false, 150)).toBe(PUNCH_SECOND_SENDER_MIN_MS + PUNCH_SECOND_SENDER_RTTS * 150);
    expect(secondSenderDelayMs(false, undefined)).toBe(PUNCH_SECOND_SENDER_DELAY_MS);
    expect(secondSenderDelayMs(false, NaN)).toBe(PUNCH_SECOND_SENDER_DELAY_MS);

    const clock = new FakeClock();
    const s = scripted(clock, true);
    await attempt(clock, s, offer("simultaneous", "dial", "restricted-cone"), "port-restricted-cone", undefined, () => {}, { requested: true, nodeRttMs: 5 });
    expect(s.raw[0]!.at).toBe(PUNCH_SECOND_SENDER_MIN_MS);
    const clock2 = new FakeClock();
    const s2 = scripted(clock2, true);
    await attempt(clock2, s2, offer("simultaneous", "dial", "restricted-cone"), "port-restricted-cone", undefined, () => {}, { requested: false, nodeRttMs: 20 });
    expect(s2.raw[0]!.at).toBe(PUNCH_SECOND_SENDER_MIN_MS + PUNCH_SECOND_SENDER_RTTS * 20);
  });

  test("a dialer's handshakes are retried with doubling timeouts, from PUNCH_FIRST_HANDSHAKE_TIMEOUT_MS up to the QUIC bound", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, false);
    await attempt(clock, s, offer("direct", "dial", "public"), "port-restricted-cone", 4_000);
    const first = PUNCH_FIRST_HANDSHAKE_TIMEOUT_MS;
    expect(s.handshakeTimeouts.slice(0, 4)).toEqual([first, 2 * first, 4 * first, 8 * first]);
    // Each retry starts 50 ms after the previous handshake gave up.
    expect(s.dials.slice(0, 3).map((d) => d.at)).toEqual([0, first + 50, 3 * first + 100]);
    const dial = PUNCH_RECIPES.direct.dial;
    expect(handshakeTimeoutMs(dial, 20)).toBe(QUIC_HANDSHAKE_TIMEOUT_MS);
  });

  test("a QUIC-Only dialer cannot see openers: it dials once the listener's turn came, not after PUNCH_DIAL_WAIT_MS", async () => {
    // QUIC-Only sends before a UDP firewall: the listener sends second, so the dial waits for its turn.
    const clock = new FakeClock();
    const s = scripted(clock, true);
    await attempt(clock, s, offer("simultaneous", "dial", "udp-firewall"), "quic-only", undefined, () => {}, { requested: true, nodeRttMs: 10 });
    expect(sendOrder({ strategy: "simultaneous", role: "dial", myNat: "quic-only", peerNat: "udp-firewall" })).toBe("first");
    expect(s.dials.map((d) => d.at)).toEqual([blindDialWaitMs("first", 10)]);
    expect(blindDialWaitMs("first", 10)).toBe(2 * PUNCH_SECOND_SENDER_MIN_MS + PUNCH_SECOND_SENDER_RTTS * 10);
    expect(blindDialWaitMs("first", 10)).toBeLessThan(PUNCH_DIAL_WAIT_MS);
    // QUIC-Only sends after a restricted cone: its own turn was the wait; it dials at once.
    const clock2 = new FakeClock();
    const s2 = scripted(clock2, true);
    await attempt(clock2, s2, offer("simultaneous", "dial", "restricted-cone"), "quic-only", undefined, () => {}, { requested: true, nodeRttMs: 10 });
    expect(s2.dials.map((d) => d.at)).toEqual([PUNCH_SECOND_SENDER_MIN_MS]);
    // An opener that does get through still starts the dial at once.
    const clock3 = new FakeClock();
    const s3 = scripted(clock3, true);
    await attempt(clock3, s3, offer("simultaneous", "dial", "udp-firewall"), "quic-only", undefined, (t) => t === 40 && s3.opener(PEER), { requested: true, nodeRttMs: 10 });
    expect(s3.dials.map((d) => d.at)).toEqual([40]);
  });

  test("sym-to-restricted: the RC listener opens at once; the symmetric dialer goes second and dials without waiting", async () => {
    const clock = new FakeClock();
    const listen = scripted(clock, false);
    await attempt(clock, listen, offer("sym-to-restricted", "listen", "symmetric"), "restricted-cone", undefined, (t) => t === 500 && listen.hello());
    expect(openerTimes(listen)[0]).toBe(0);

    const clock2 = new FakeClock();
    const dial = scripted(clock2, true);
    await attempt(clock2, dial, offer("sym-to-restricted", "dial", "restricted-cone"), "symmetric");
    expect(openerTimes(dial)[0]).toBe(PUNCH_SECOND_SENDER_DELAY_MS);
    expect(dial.dials.map((d) => d.at)).toEqual([PUNCH_SECOND_SENDER_DELAY_MS]);
  });

  test("a QUIC-Only side doubles every opener with a QUIC-looking datagram", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, false);
    await attempt(clock, s, offer("simultaneous", "dial", "quic-only"), "port-restricted-cone", 300);
    expect(s.raw.length).toBeGreaterThan(2);
    s.raw.forEach((r, i) => expect(i % 2 === 0 ? r.byte0 === 0x24 : (r.byte0 & 0xc0) === 0x40).toBe(true));
  });

  test("spray listener: probes start after SPRAY_START_DELAY_MS, predicted ports first, at the plan's pace", async () => {
    const clock = new FakeClock();
    const s = scripted(clock, false);
    const plan: SprayParams = { sockets: 4, probes: 20, portMin: 1024, portMax: 65535, probeIntervalMs: 5, predicted: { base: 40000, delta: 2, count: 4 }, odds: 0 };
    await attempt(clock, s, offer("sym-to-cone-spray", "listen", "symmetric", plan), "port-restricted-cone", undefined, (t) => t === 300 && s.hello());
    const probes = s.raw.filter((r) => r.byte0 === 0x24);
    expect(probes[0]!.at).toBe(SPRAY_START_DELAY_MS);
    expect(probes.slice(0, 4).map((p) => p.port)).toEqual([40002, 40004, 40006, 40008]);
    // Pace: one probe per 5 ms since the round began, sent in batches every 10 ms.
    expect(probes.filter((p) => p.at <= SPRAY_START_DELAY_MS + 50)).toHaveLength(11);
  });

  test("spray dialer (real loopback sockets): one opener from each of the plan's sockets, then the dial from the socket a probe met", async () => {
    const cone = createSocket("udp4");
    await new Promise<void>((r) => cone.bind(0, "127.0.0.1", () => r()));
    const senders: number[] = [];
    cone.on("message", (_buf, rinfo) => {
      senders.push(rinfo.port);
      // The cone side's probe meets the second spray socket that reached it.
      if (senders.length === 2) cone.send(encodePunchPacket(peerToken, { type: PUNCH_PACKET_TYPE.probe, attemptId: new Uint8Array(16).fill(1), seq: 0 }), rinfo.port, rinfo.address);
    });
    const plan: SprayParams = { sockets: 3, probes: 10, portMin: 1024, portMax: 65535, probeIntervalMs: 5, predicted: null, odds: 0 };
    const o = { ...offer("sym-to-cone-spray", "dial", "udp-firewall", plan), ip: "127.0.0.1", port: (cone.address() as { port: number }).port };
    const opened: number[] = [];
    const dialedFrom: number[] = [];
    const io: AttemptIo = {
      main: { sendRaw: () => {}, dial: () => Promise.reject(new Error("the spray dials from the socket that met")) },
      openSocket: async (port) => {
        opened.push(port);
        return { sendRaw: () => {}, dial: async () => (dialedFrom.push(port), fakeLink()), adopt() {}, release: async () => {} };
      },
      waitHello: () => new Promise(() => {}),
      onOpener: () => () => {},
      bindHost: "127.0.0.1",
      selfId: idOf(1),
    };
    try {
      const out = await runAttempt(io, o, { nat: "symmetric", timeoutMs: 3000 });
      expect(out.result.connected).toBe(true);
      expect(new Set(senders.slice(0, 3)).size).toBe(3);
      expect(opened).toEqual([senders[1]!]);
      expect(dialedFrom).toEqual([senders[1]!]);
      expect(out.result.spray).toEqual({ sockets: 3, probes: 0, hitPort: senders[1]! });
    } finally {
      cone.close();
    }
  });
});
