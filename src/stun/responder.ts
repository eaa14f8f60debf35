// Answers STUN Binding Requests that arrive on the shared UDP socket (RFC 5389 §7.3, §10; RFC 3489 via §12.2).
import { parseBindingRequest, writeBindingSuccess } from "./binding.ts";
import { MAX_BINDING_SUCCESS_BYTES } from "./stun-constants.ts";

/**
 * Sends one datagram. `bytes` is a view of the responder's reused buffer and is only valid during the call:
 * a socket that sends synchronously (Bun.udpSocket, Bun's node:dgram) may pass it straight on; one that
 * queues (Node's node:dgram under back-pressure) must copy it first.
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
}

/** A Binding responder with its own output buffer; one per socket (the buffer is reused for every answer). */
export function createBindingResponder(): BindingResponder {
  const out = new Uint8Array(MAX_BINDING_SUCCESS_BYTES);
  // Responses come in four sizes (IPv4/IPv6 × RFC 5389/3489): keep one view per size, none per answer.
  const views: Uint8Array[] = [];
  const state = {
    answered: 0,
    malformed: 0,
    ignored: 0,
    unanswered: 0,
    handle(buf: Uint8Array, ip: string, port: number, family: 4 | 6, send: BindingSend): boolean {
      const request = parseBindingRequest(buf);
      if (!request.ok) {
        if (request.fault === "not-binding-request" || request.fault === "change-request") state.ignored++;
        else state.malformed++;
        return false;
      }
      const length = writeBindingSuccess(out, request.txId, ip, port, family);
      if (length === 0) {
        state.unanswered++;
        return false;
      }
      try {
        send((views[length] ??= out.subarray(0, length)), port, ip);
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
