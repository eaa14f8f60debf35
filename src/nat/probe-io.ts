// What the probe runner (probe-runner.ts) needs from the world: a clock, and links and sockets that speak the STUN:Cone
// requests and datagrams already decoded. probe-client.ts provides them over QUIC and UDP; tests script them.
import { systemClock, type Clock } from "../contracts/index.ts";
import type { LifetimeOutcome } from "./lifetime-client.ts";
import type { ProbeSource } from "./probe-packet.ts";
import type { Endpoint } from "./source-check.ts";

/** The contracts Clock's timers, plus a way to run a callback behind the I/O already queued (a timer and a late
 *  datagram can be ready in the same loop turn, and timers run before I/O). */
export interface ProbeClock extends Pick<Clock, "now" | "setTimeout" | "clearTimeout"> {
  defer(fn: () => void): void;
}

/** System timers; now() is monotonic (performance.now): the probe only measures durations with it. */
export const realProbeClock: ProbeClock = {
  now: () => performance.now(),
  setTimeout: (fn, ms) => systemClock.setTimeout(fn, Math.max(0, ms)),
  clearTimeout: (t) => systemClock.clearTimeout(t),
  defer: (fn) => void setImmediate(fn),
};

/** Resolves after `ms` on `clock`. */
export function sleepOn(clock: ProbeClock, ms: number): Promise<void> {
  return new Promise((r) => clock.setTimeout(r, Math.max(0, ms)));
}

/** Deadline and cancellation of one request. */
export interface ProbeStepOptions {
  signal: AbortSignal;
  timeoutMs: number;
}

export interface ProbeServer extends Endpoint {
  /** The server's X25519 key ("#hex" of an address): with it the link is bootstrapped and pinned. */
  publicKey?: Uint8Array;
}

/** One delegate's part in a formal step, as the source server reports it. */
export interface DelegateReport {
  nodeId: string;
  /** IP it sent from; "" when it sent nothing. */
  fromIp: string;
  sent: number;
  error: string;
}

/** The proof of work a NewHost request carries (newhost-proof.ts); opaque to the runner. */
export type NewHostProofInit = { issuedAtMs: bigint; nonce: Uint8Array };
/** A would-be delegate's consent token (newhost-consent.ts), by the IP it was fetched from; opaque to the runner. */
export type NewHostConsentInit = { serverIp: string; token: Uint8Array };

/** The QUIC link to one server (socket P), with the requests of DESIGN §6. */
export interface ServerLink {
  readonly remote: Endpoint;
  readonly pinned: boolean;
  /** Smoothed RTT, ms; undefined before a sample. */
  readonly rttMs: number | undefined;
  whoami(step: ProbeStepOptions): Promise<Endpoint>;
  /** Servers the node knows: the mesh peers API. */
  meshPeers(max: number, step: ProbeStepOptions): Promise<Endpoint[]>;
  /** Servers the node knows: the NAT service's own list. */
  natServers(step: ProbeStepOptions): Promise<Endpoint[]>;
  /** nat.begin with this run's key. */
  begin(step: ProbeStepOptions): Promise<{ token: Uint8Array; newPort: number }>;
  /** nat.passage: the number of probes the server sent. */
  passage(token: Uint8Array, step: ProbeStepOptions): Promise<number>;
  formal(
    req: { token: Uint8Array; cookie: Uint8Array; avoidIps: string[]; proof: NewHostProofInit; consents: NewHostConsentInit[] },
    step: ProbeStepOptions,
  ): Promise<{ newPortSent: number; delegates: DelegateReport[] }>;
  lifetime(opts: { maxS?: number; signal?: AbortSignal; onProgress: (m: string) => void }): Promise<LifetimeOutcome>;
}

/** A fresh unconnected socket F for one formal step. */
export interface FormalSocket {
  readonly local: Endpoint;
  sendHello(token: Uint8Array, to: Endpoint): Promise<void>;
  close(): void;
}

/** Datagrams on a formal socket that carried this run's MAC. */
export interface FormalSocketEvents {
  onAck(from: Endpoint, mapped: Endpoint, cookie: Uint8Array): void;
  onProbe(source: ProbeSource, from: Endpoint): void;
}

/** The UDP check's socket U (udp-check-packet.ts): each send asks one server both ways (STUN and QUIC). */
export interface UdpCheckSocket {
  send(to: Endpoint): void;
  close(): void;
}

/** What answered the UDP check: a Binding Success ("stun") or a QUIC Version Negotiation ("quic"). */
export type UdpCheckAnswer = "stun" | "quic";

export interface ProbeIo {
  /** Socket P: the one every QUIC link leaves from. */
  readonly localAddress: Endpoint;
  connect(server: ProbeServer, step: ProbeStepOptions): Promise<ServerLink>;
  /** hello-port from P (the same-IP/other-port mapping test). */
  sendHelloPort(token: Uint8Array, to: Endpoint): Promise<void>;
  openFormalSocket(events: FormalSocketEvents): Promise<FormalSocket>;
  proveNewHost(mapped: Endpoint, signal: AbortSignal): Promise<NewHostProofInit>;
  /** Asks each server over HTTPS (its TLS port, same number as UDP) for a NewHost consent token for `mapped`;
   *  returns those it got. Without it, no delegate will send NewHost probes. */
  newHostConsents?(servers: readonly Endpoint[], mapped: Endpoint, signal: AbortSignal): Promise<NewHostConsentInit[]>;
  /** Opens socket U for the UDP check; answers that match this run's requests go to `onAnswer`. Without it the
   *  run cannot tell udp-blocked before its timeout. */
  openUdpCheck?(onAnswer: (from: Endpoint, answer: UdpCheckAnswer) => void): Promise<UdpCheckSocket>;
  /** HTTPS whoami: the address the server saw. */
  httpsWhoami(server: Endpoint, signal: AbortSignal): Promise<string>;
}
