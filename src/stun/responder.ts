// Answers STUN Binding Requests that arrive on the shared UDP socket (RFC 5389 §7.3, §10; RFC 3489 via §12.2).
import { parseBindingRequest, writeBindingSuccess } from "./binding.ts";
import { MAX_BINDING_SUCCESS_BYTES } from "./constants.ts";
import { prefixOf, TokenBuckets } from "../rpc/index.ts";
import { isIP } from "node:net";

/** Sources whose budget is remembered at once; the stalest is forgotten first (~100 B each). */
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
   * Bun's node:dgram reads the buffer later (every datagram received carried the rewritten bytes), so leave
   * it off behind node:dgram, and so behind @matrixai/quic's socket.
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
  const sources = new TokenBuckets(MAX_BINDING_SOURCES);
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
        const key = isIP(ip) === 6 && !ip.startsWith("::ffff:") ? prefixOf(ip, 32, 64) : ip;
        const t = now();
        if (!sources.has(key, budget.ratePerS, budget.burst, t)) {
          state.limited++;
          return false;
        }
        sources.take(key, budget.ratePerS, budget.burst, t);
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
