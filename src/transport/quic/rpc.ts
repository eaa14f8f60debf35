// Request/response over QUIC: one Envelope each way per bidirectional stream (DESIGN §4, STYLE §6–§7).
//
// Protocol: the requester opens a bidi stream, writes one Envelope, closes its write side (FIN); the
// answerer reads at most MAX_QUIC_REQUEST_BYTES (more → both directions reset with code tooLarge), decodes,
// runs the handler, writes one answer Envelope and closes. Either side resets the stream with code
// `timeout` when REQUEST_TIMEOUT_MS passes. Answers are matched by stream, not by id: an answer to a
// request that could not be decoded carries id 0 and method "invalid".
import type { QUICStream } from "@matrixai/quic";
import type { Histogram } from "../../contracts/metrics.ts";
import { MAX_QUIC_REQUEST_BYTES, REQUEST_TIMEOUT_MS } from "../../constants.ts";
import { TimeoutError, errorLine } from "../../errors.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status, statusName, type Envelope } from "../../wire/codec.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";
import { cancelStream, deadline, raceSignal, readBounded, StreamAbort, writeAndClose } from "./stream-io.ts";
import type { Logger } from "../../contracts/logger.ts";

export interface RequestContext {
  /** Peer IP as this end sees it (IPv4-mapped IPv6 reported as IPv4). */
  remoteIp: string;
  remotePort: number;
  /** Shared id of the QUIC connection (same value at both ends). */
  connectionId: string;
  /** Inbound: the app completed bootstrap and bound this connection (app.bind). Outbound: we dialled with a pin. */
  pinned: boolean;
  /** The peer's X25519 key, once known (bound app, or a pinned dial that named it). */
  peerKey?: Uint8Array;
  /** Aborted when the request times out or the endpoint stops. */
  signal: AbortSignal;
}

export interface HandlerResult {
  status: Status;
  payload?: Uint8Array;
  error?: string;
}

export type RequestHandler = (req: Envelope, ctx: RequestContext) => Promise<HandlerResult>;

export interface RpcCounters {
  /** Streams served (requests read, whatever their outcome). */
  streams: number;
  /** Streams reset for exceeding MAX_QUIC_REQUEST_BYTES, plus connections refused by a limit. */
  refusedLimits: number;
  /** Requests answered BAD_REQUEST: undecodable, not a request, unknown method. */
  badRequests: number;
  /** Streams abandoned because reading or answering took longer than REQUEST_TIMEOUT_MS. */
  streamTimeouts: number;
  /** Handlers that threw (answered INTERNAL). */
  handlerErrors: number;
}

export function newRpcCounters(): RpcCounters {
  return { streams: 0, refusedLimits: 0, badRequests: 0, streamTimeouts: 0, handlerErrors: 0 };
}

/** What serveStream needs from the endpoint. */
export interface StreamServer {
  handlers: ReadonlyMap<string, RequestHandler>;
  counters: RpcCounters;
  /** Aborted by stop(). */
  stopSignal: AbortSignal;
  context(): Omit<RequestContext, "signal">;
  log?: Logger;
  /** Handler run time per method (registered methods only, so the label set stays bounded). */
  requestSeconds?: Histogram<"method">;
}

/**
 * Serves one peer-opened stream: read → decode → handler → answer. Never throws: network input becomes
 * counters, an answer, or a reset stream.
 */
export async function serveStream(stream: QUICStream, server: StreamServer): Promise<void> {
  server.counters.streams++;
  const wait = deadline(REQUEST_TIMEOUT_MS, "QUIC request", server.stopSignal);
  try {
    let bytes: Uint8Array | null;
    try {
      bytes = await readBounded(stream.readable, MAX_QUIC_REQUEST_BYTES, wait.signal);
    } catch (err) {
      if (err instanceof TimeoutError) server.counters.streamTimeouts++;
      cancelStream(stream, err);
      return;
    }
    if (bytes === null) {
      server.counters.refusedLimits++;
      cancelStream(stream, new StreamAbort(QUIC_STREAM_CODE.tooLarge, `request over ${MAX_QUIC_REQUEST_BYTES} bytes`));
      return;
    }
    const answer = await answerFor(bytes, server, wait.signal);
    try {
      await writeAndClose(stream, answer, wait.signal);
    } catch (err) {
      if (err instanceof TimeoutError) server.counters.streamTimeouts++;
      cancelStream(stream, err);
    }
  } catch (err) {
    // Only a bug can land here; keep the endpoint alive and say so.
    server.log?.error("QUIC stream handling failed", { error: errorLine(err) });
    cancelStream(stream, err);
  } finally {
    wait.done();
  }
}

async function answerFor(bytes: Uint8Array, server: StreamServer, signal: AbortSignal): Promise<Uint8Array> {
  let req: Envelope;
  try {
    req = decodeEnvelope(bytes, MAX_QUIC_REQUEST_BYTES);
  } catch (err) {
    server.counters.badRequests++;
    return encodeEnvelope({ id: 0n, method: "invalid", status: Status.BAD_REQUEST, error: errorLine(err) });
  }
  if (req.status !== Status.REQUEST) {
    server.counters.badRequests++;
    return encodeAnswer(req, Status.BAD_REQUEST, undefined, `expected a request, got status ${statusName(req.status)}`);
  }
  const handler = server.handlers.get(req.method);
  if (!handler) {
    server.counters.badRequests++;
    return encodeAnswer(req, Status.BAD_REQUEST, undefined, `unknown method ${req.method}`);
  }
  let result: HandlerResult;
  const observed = server.requestSeconds?.startTimer({ method: req.method });
  try {
    result = await raceSignal(handler(req, { ...server.context(), signal }), signal);
  } catch (err) {
    if (signal.aborted) return encodeAnswer(req, Status.INTERNAL, undefined, `${req.method} did not finish in time`);
    server.counters.handlerErrors++;
    server.log?.warn("QUIC handler failed", { method: req.method, error: errorLine(err) });
    return encodeAnswer(req, Status.INTERNAL, undefined, `${req.method} failed`);
  } finally {
    observed?.();
  }
  try {
    return encodeAnswer(req, result.status, result.payload, result.error);
  } catch (err) {
    server.counters.handlerErrors++;
    server.log?.warn("QUIC answer could not be encoded", { method: req.method, error: errorLine(err) });
    return encodeAnswer(req, Status.INTERNAL, undefined, `${req.method} answer too large`);
  }
}

/** Wraps a handler so that it runs only on pinned links: an app that completed the bootstrap and bound
 *  its connection, or a link we dialled with a pin (DESIGN §3: first-contact links are for online help only). */
export function requirePinned(handler: RequestHandler): RequestHandler {
  return async (req, ctx) =>
    ctx.pinned ? handler(req, ctx) : { status: Status.UNAUTHENTICATED, error: `${req.method} needs a pinned link: run the app bootstrap first` };
}
