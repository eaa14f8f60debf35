// What one punch attempt (punch-attempt.ts, punch-spray.ts) works with: the app's sockets, a clock, the opener
// maker and the counters of what was sent and received; and the hello both kinds of dialer end with.
import { METHOD } from "../rpc/index.ts";
import { timingSafeEqual } from "node:crypto";
import { systemClock, type Clock } from "../contracts/index.ts";
import type { Logger } from "../contracts/index.ts";
import { expectOk, type QuicLink } from "../transport/index.ts";
import type { DialOptions } from "../transport/index.ts";
import { PeerError } from "../errors.ts";
import { encodeMessage, Status } from "../wire/index.ts";
import { PunchHelloSchema } from "../wire/index.ts";
import { readPunchHelloAnswer, type PunchOffer } from "./punch-info.ts";
import type { PunchPacketType } from "./punch-packet.ts";

export interface PeerAddr {
  ip: string;
  port: number;
}

/** One UDP socket an attempt punches from: raw datagrams and QUIC dials (its QUIC server takes the listener's
 *  side). */
export interface AttemptSocket {
  sendRaw(bytes: Uint8Array, port: number, ip: string): void;
  dial(addr: PeerAddr, opts: DialOptions): Promise<QuicLink>;
}

/** A socket opened for one attempt: kept while the punched link on it lives, else released. */
export interface OwnedSocket extends AttemptSocket {
  /** The socket stays open until `link` closes. */
  adopt(link: QuicLink): void;
  release(): Promise<void>;
}

/** What an attempt needs from the app's socket and client (punch-client.ts provides it). */
export interface AttemptIo {
  /** The socket that holds our mapping to the node (the one the peer was told about). */
  main: AttemptSocket;
  /** A fresh socket with the main one's handlers, on `port` (0 = any): the spray socket that met the peer, or
   *  a second sender that must not disturb the main socket's mapping (punch-order.ts useFreshSocket). */
  openSocket(port: number): Promise<OwnedSocket>;
  /** Listener: the inbound link whose punch.hello carried the peer's token for this attempt. */
  waitHello(signal: AbortSignal): Promise<QuicLink>;
  /** Subscribes to this attempt's openers that reached the main socket (already authenticated). */
  onOpener(fn: (from: PeerAddr) => void): () => void;
  /** Local address the spray sockets bind to ("0.0.0.0", "::", or the main socket's address). */
  bindHost: string;
  /** Our node id (hex), sent in the hello. */
  selfId: string;
  log?: Logger;
}

/** Timers of an attempt: the contracts Clock (tests pass a FakeClock). */
export type AttemptClock = Pick<Clock, "now" | "setTimeout" | "clearTimeout" | "setInterval" | "clearInterval">;

/** System timers; now() is monotonic (performance.now): an attempt only measures durations with it. */
export const realAttemptClock: AttemptClock = { ...systemClock, now: () => performance.now() };

export type AttemptStats = { sent: number; received: number; hitPort: number | null; probes: number };

/** One attempt in progress, as its strategy's side sees it. */
export interface AttemptRun {
  io: AttemptIo;
  offer: PunchOffer;
  signal: AbortSignal;
  clock: AttemptClock;
  stats: AttemptStats;
  /** The next authenticated opener of this attempt. */
  opener(type: PunchPacketType): Uint8Array;
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function pause(clock: AttemptClock, ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      clock.clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = clock.setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}

/** The punch.hello exchange failed on a token or node id: the link reached someone, but not the peer. */
export class PunchTokenError extends PeerError {
  constructor(message: string) {
    super(message);
    this.name = "PunchTokenError";
  }
}

/** Step 3: prove our token, check the listener's. Closes the link on failure. */
export async function sayHello(io: AttemptIo, link: QuicLink, offer: PunchOffer, signal: AbortSignal): Promise<void> {
  try {
    const hello = encodeMessage(PunchHelloSchema, { attemptId: offer.attemptId, token: offer.ownToken, nodeId: io.selfId });
    const reply = await link.request(METHOD.punchLink.hello, hello, { signal });
    if (reply.status === Status.UNAUTHENTICATED) throw new PunchTokenError(`the listener refused our token: ${reply.error}`);
    const answer = readPunchHelloAnswer(expectOk(reply));
    if (answer.token.length !== offer.peerToken.length || !timingSafeEqual(answer.token, offer.peerToken)) throw new PunchTokenError("the listener answered with a wrong token");
    if (answer.nodeId !== offer.peerId) throw new PunchTokenError(`the listener says it is ${answer.nodeId.slice(0, 16)}…, not the announced peer (token check)`);
  } catch (err) {
    await link.close();
    throw err;
  }
}
