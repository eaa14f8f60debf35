// Scripted evidence for the probe runner: a ProbeIo whose servers answer after a fixed RTT on a FakeClock, with the
// mappings, acks and probes a NAT class would let through. Every send is logged with its time.
import type { DelegateReport, FormalSocketEvents, ProbeIo, ProbeServer, ServerLink } from "../../src/nat/probe-io.ts";
import type { ProbeSource } from "../../src/nat/probe-packet.ts";
import type { Endpoint } from "../../src/nat/source-check.ts";
import type { FakeClock } from "../../src/contracts/fake-clock.ts";

export const LOCAL: Endpoint = { ip: "10.99.3.2", port: 40000 };
export const SERVERS: ProbeServer[] = [
  { ip: "203.0.113.1", port: 7788 },
  { ip: "203.0.113.2", port: 7788 },
  { ip: "203.0.113.3", port: 7788 },
];
export const NEW_PORT = 9000;
export const FORMAL_LOCAL: Endpoint = { ip: LOCAL.ip, port: 50000 };
export const RTT_MS = 20;

export interface NatScript {
  /** Mapped address each server sees for P (by server IP); absent: that server cannot be reached. */
  mapped: Record<string, Endpoint>;
  /** Mapping the source's new port sees; null: the hello-port or its ack is lost. */
  portAck: Endpoint | null;
  /** Passage probes that get through to P. */
  passageProbes: number;
  /** Mapping the source sees for F; null: the hello-formal or its ack is lost. */
  formalMapped: Endpoint | null;
  /** NewPort probes that get through to F. */
  newPortProbes: number;
  /** Delegates per source IP (default: two on 198.51.100.7/.8), and whether their NewHost probes get through. */
  delegates?: (source: Endpoint) => DelegateReport[];
  newHostGetsIn: boolean;
  /** HTTPS whoami answer; null: refused. */
  tcp: string | null;
  /** How long the HTTPS whoami takes, ms. @default RTT_MS / 2 */
  tcpMs?: number;
  /** How long a QUIC connect to a reachable server takes, ms (by server IP when a function). @default RTT_MS */
  connectMs?: number | ((ip: string) => number);
  /** A QUIC connect to an unreachable server hangs until its deadline (UDP dropped) instead of failing at once. */
  quicHangs?: boolean;
  /** What answers the UDP check (after one RTT). @default "stun" when some server is reachable, else nothing */
  udpCheck?: "stun" | "quic" | null;
}

export interface Sent {
  at: number;
  what: "connect" | "whoami" | "begin" | "hello-port" | "passage" | "hello-formal" | "formal" | "https" | "udp-check";
  to: string;
}

export interface ScriptedIo extends ProbeIo {
  sent: Sent[];
  /** The avoid list of each nat.formal request, in order. */
  avoided: string[][];
  /** Where P's datagrams go (the runner's onPortAck / onProbe). */
  deliverTo(sink: { onPortAck(from: Endpoint, mapped: Endpoint): void; onProbe(source: ProbeSource, from: Endpoint): void }): void;
}

const key = (e: Endpoint) => `${e.ip}:${e.port}`;

export function scriptedIo(clock: FakeClock, script: NatScript): ScriptedIo {
  const sent: Sent[] = [];
  const avoided: string[][] = [];
  let sink: Parameters<ScriptedIo["deliverTo"]>[0] | undefined;
  let formalEvents: FormalSocketEvents | undefined;
  const log = (what: Sent["what"], to: Endpoint) => sent.push({ at: clock.now(), what, to: key(to) });
  const later = <T>(ms: number, value: () => T) => new Promise<void>((r) => clock.setTimeout(r, ms)).then(value);
  const delegatesOf = (s: Endpoint) =>
    script.delegates?.(s) ?? [
      { nodeId: "a".repeat(64), fromIp: "198.51.100.7", sent: 3, error: "" },
      { nodeId: "b".repeat(64), fromIp: "198.51.100.8", sent: 3, error: "" },
    ];

  function link(s: ProbeServer): ServerLink {
    return {
      remote: s,
      pinned: false,
      rttMs: RTT_MS,
      whoami: () => (log("whoami", s), later(RTT_MS, () => script.mapped[s.ip]!)),
      meshPeers: () => Promise.reject(new Error("no mesh")),
      natServers: () => Promise.resolve([]),
      begin: () => (log("begin", s), later(RTT_MS, () => ({ token: new Uint8Array(16), newPort: NEW_PORT }))),
      passage(_token) {
        log("passage", s);
        for (let i = 0; i < script.passageProbes; i++) void later(RTT_MS / 2, () => sink?.onProbe("passage", s));
        return later(RTT_MS, () => 2);
      },
      formal(req) {
        log("formal", s);
        avoided.push(req.avoidIps);
        const newPortFrom = { ip: s.ip, port: NEW_PORT };
        for (let i = 0; i < script.newPortProbes; i++) void later(RTT_MS / 2, () => formalEvents?.onProbe("newPort", newPortFrom));
        const delegates = delegatesOf(s);
        if (script.newHostGetsIn) {
          for (const d of delegates) if (d.sent > 0) void later(RTT_MS / 2, () => formalEvents?.onProbe("newHost", { ip: d.fromIp, port: 7788 }));
        }
        expectKnown(req.cookie);
        return later(RTT_MS, () => ({ newPortSent: script.newPortProbes, delegates }));
      },
      lifetime: () => Promise.reject(new Error("not scripted")),
    };
  }

  return {
    sent,
    avoided,
    localAddress: LOCAL,
    deliverTo: (s) => (sink = s),
    connect(s, step) {
      log("connect", s);
      if (!script.mapped[s.ip] && script.quicHangs) {
        return new Promise((_, reject) => {
          const t = clock.setTimeout(() => reject(new Error(`no answer from ${key(s)} in time`)), step.timeoutMs);
          step.signal.addEventListener("abort", () => (clock.clearTimeout(t), reject(new Error("aborted"))), { once: true });
        });
      }
      const ms = typeof script.connectMs === "function" ? script.connectMs(s.ip) : (script.connectMs ?? RTT_MS);
      return later(ms, () => {
        if (!script.mapped[s.ip]) throw new Error(`no answer from ${key(s)}`);
        return link(s);
      });
    },
    async openUdpCheck(onAnswer) {
      const answer = script.udpCheck !== undefined ? script.udpCheck : Object.keys(script.mapped).length > 0 ? "stun" : null;
      return {
        send(to) {
          log("udp-check", to);
          if (answer && (script.mapped[to.ip] || script.udpCheck)) void later(RTT_MS, () => onAnswer(to, answer));
        },
        close() {},
      };
    },
    async sendHelloPort(_token, to) {
      log("hello-port", to);
      const ack = script.portAck;
      if (ack) void later(RTT_MS / 2, () => sink?.onPortAck(to, ack));
    },
    async openFormalSocket(events) {
      formalEvents = events;
      return {
        local: FORMAL_LOCAL,
        async sendHello(_token, to) {
          log("hello-formal", to);
          const mapped = script.formalMapped;
          if (mapped) void later(RTT_MS, () => events.onAck(to, mapped, COOKIE));
        },
        close() {},
      };
    },
    proveNewHost: async () => ({ issuedAtMs: 0n, nonce: new Uint8Array(8) }),
    httpsWhoami(server) {
      log("https", server);
      return later(script.tcpMs ?? RTT_MS / 2, () => {
        if (script.tcp === null) throw new Error("connection refused");
        return script.tcp;
      });
    },
  };
}

const COOKIE = Uint8Array.from({ length: 16 }, (_, i) => i);

function expectKnown(cookie: Uint8Array): void {
  if (cookie.length !== COOKIE.length || cookie.some((b, i) => b !== COOKIE[i])) throw new Error("the formal request echoed another cookie");
}

/** A port-restricted cone behind 203.0.113.103: one mapping for P, another for F, nothing unsolicited gets in. */
export function portRestricted(): NatScript {
  const pub = { ip: "203.0.113.103", port: 40000 };
  return {
    mapped: Object.fromEntries(SERVERS.map((s) => [s.ip, pub])),
    portAck: pub,
    passageProbes: 2,
    formalMapped: { ip: pub.ip, port: 50000 },
    newPortProbes: 0,
    newHostGetsIn: false,
    tcp: null,
  };
}
