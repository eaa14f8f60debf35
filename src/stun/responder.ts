// Answers STUN Binding Requests that arrive on the shared UDP socket (RFC 5389 §7.3, §10; RFC 3489 via §12.2).
import { parseBindingRequest, writeBindingSuccess } from "./binding.ts";
import { MAX_BINDING_SUCCESS_BYTES } from "./constants.ts";
import { BoundedMap } from "../contracts/index.ts";
import { prefixOf } from "../rpc/index.ts";

/** Sources whose budget is remembered at once (~100 B each); the first remembered is forgotten first. A
 *  spoofer who cycles through this many sources to refresh one victim's bucket pays this many requests
 *  for one more burst. */
const MAX_BINDING_SOURCES = 65_536;

/**
 * Sends one datagram. With `reuseOutput` the bytes are a view of the responder's buffer, valid only during the
 * call; otherwise they belong to the callee.
 */
export type BindingSend = (bytes: Uint8Array, port: number, ip: string) => void;

export interface BindingResponder {
  /**
   * Handles one datagram the classifier called "stun", from `ip`:`port` (`family` as the socket reports it;
   * an IPv4-mapped IPv6 peer is answered as IPv4). Returns true when a Binding Success was sent.
   * Never throws: bad input is counted, and a throwing `send` is counted as a send error.
   */
  handle(buf: Uint8Array, ip: string, port: number, family: 4 | 6, send: BindingSend): boolean;
  /** Binding Success Responses sent. */
  readonly answered: number;
  /** Datagrams that were not a well-formed STUN message (truncated, oversize, bad length, attributes or FINGERPRINT). */
  readonly malformed: number;
  /** Well-formed STUN that is not for us: responses, indications, other methods, CHANGE-REQUEST we cannot honour. */
  readonly ignored: number;
  /** Requests we could not answer: an unusable source address, or `send` threw. */
  readonly unanswered: number;
  /** Requests dropped because their source (an IPv4 address, an IPv6 /64) spent its budget. */
  readonly limited: number;
}

export interface BindingResponderInit {
  /**
   * Write every answer into one buffer and pass a view of it to `send`: no allocation per answer, but only
   * safe when `send` has finished with the bytes when it returns. Measured with a 200 000-datagram burst that
   * rewrote the buffer right after each send (Bun 1.4.5): Bun.udpSocket's send() copies synchronously (0 bad),
   * Bun's node:dgram reads the buffer later (every datagram received carried the rewritten bytes). The node's
   * shared socket queues answers and sends them once per event-loop turn in one sendMany (a 32–44-byte copy
   * per answer is cheaper than a syscall per answer), so leave it off there.
   * @default false
   */
  reuseOutput?: boolean;
  /** Answers per source (an IPv4 address, an IPv6 /64): a token bucket. A spoofed flood can then make this node
   *  send at most `ratePerS` answers a second to one victim. @default unlimited */
  budget?: { ratePerS: number; burst: number };
  /** @default Date.now */
  now?: () => number;
}

/** A Binding responder; one per socket when `reuseOutput` is on (the buffer is shared by every answer). */
export function createBindingResponder(init: BindingResponderInit = {}): BindingResponder {
  const reuseOutput = init.reuseOutput ?? false;
  const out = new Uint8Array(MAX_BINDING_SUCCESS_BYTES);
  // Responses come in four sizes (IPv4/IPv6 × RFC 5389/3489): keep one view per size, none per answer.
  const views: Uint8Array[] = [];
  const budget = init.budget;
  const now = init.now ?? Date.now;
  // Per source: tokens left and when they were counted. Insertion order only: no reordering on the hot path.
  // At the cap a new source evicts the oldest in O(1): a flood from spoofed sources costs no scan per datagram.
  const sources = new BoundedMap<string, { tokens: number; at: number }>(MAX_BINDING_SOURCES);
  /** Takes one token of `key`'s bucket; false when it is empty. */
  function spend(key: string, ratePerS: number, burst: number): boolean {
    const t = now();
    const b = sources.get(key);
    if (b === undefined) {
      sources.set(key, { tokens: burst - 1, at: t });
      return true;
    }
    // max(0, …): a clock that steps back must not drain or overfill a bucket.
    const tokens = Math.min(burst, b.tokens + (Math.max(0, t - b.at) / 1000) * ratePerS);
    b.at = Math.max(b.at, t);
    if (tokens < 1) {
      b.tokens = tokens;
      return false;
    }
    b.tokens = tokens - 1;
    return true;
  }
  const state = {
    answered: 0,
    malformed: 0,
    ignored: 0,
    unanswered: 0,
    limited: 0,
    handle(buf: Uint8Array, ip: string, port: number, family: 4 | 6, send: BindingSend): boolean {
      const request = parseBindingRequest(buf);
      if (!request.ok) {
        if (request.fault === "not-binding-request" || request.fault === "change-request") state.ignored++;
        else state.malformed++;
        return false;
      }
      if (budget) {
        // IPv4 (and IPv4-mapped) sources are keyed by address, which needs no allocation; IPv6 by its /64.
        const key = ip.includes(":") && !ip.startsWith("::ffff:") ? prefixOf(ip, 32, 64) : ip;
        if (!spend(key, budget.ratePerS, budget.burst)) {
          state.limited++;
          return false;
        }
      }
      const length = writeBindingSuccess(out, request.txId, ip, port, family);
      if (length === 0) {
        state.unanswered++;
        return false;
      }
      try {
        send(reuseOutput ? (views[length] ??= out.subarray(0, length)) : out.slice(0, length), port, ip);
      } catch {
        // A closed or failing socket is the transport's to report; the responder only counts it.
        state.unanswered++;
        return false;
      }
      state.answered++;
      return true;
    },
  };
  return state;
}
