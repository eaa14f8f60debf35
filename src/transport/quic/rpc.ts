// Request/response over QUIC (DESIGN §4, STYLE §6–§7). Two forms share the router and its policy: a request
// channel (mux-frame.ts, mux-server.ts) carries many framed requests on one stream, and is what our links
// send; one Envelope each way per bidirectional stream, below, is still answered.
//
// One request per stream: the requester opens a bidi stream, writes one Envelope, closes its write side (FIN); the
// answerer reads at most MAX_QUIC_REQUEST_BYTES (more → both directions reset with code tooLarge), decodes,
// runs it through the router (src/rpc), writes one answer Envelope and closes. Either side resets the stream with code
// `timeout` when REQUEST_TIMEOUT_MS passes. Answers are matched by stream, not by id: an answer to a
// request that could not be decoded carries id 0 and method "invalid".
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { QUICStream } from "@matrixai/quic";
import { MAX_QUIC_REQUEST_BYTES, REQUEST_TIMEOUT_MS } from "../../constants.ts";
import { TimeoutError, errorLine } from "../../errors.ts";
import { decodeEnvelope, encodeAnswer, encodeEnvelope, Status, statusName, type Envelope } from "../../wire/index.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";
import { cancelStream, deadline, readBounded, StreamAbort, writeAndClose } from "./stream-io.ts";
import type { Logger } from "../../contracts/index.ts";
import type { Router } from "../../rpc/index.ts";
import type { RpcContext } from "../../rpc/index.ts";

export interface RpcCounters {
  /** Request streams and request channels served. */
  streams: number;
  /** Requests read, whatever their outcome (one per request stream, one per frame of a channel). */
  requests: number;
  /** Streams reset for exceeding MAX_QUIC_REQUEST_BYTES, request channels beyond the per-connection cap,
   *  and connections refused by a limit. */
  refusedLimits: number;
  /** Requests answered BAD_REQUEST: undecodable, not a request, unknown method. */
  badRequests: number;
  /** Streams abandoned because reading or answering took longer than REQUEST_TIMEOUT_MS. */
  streamTimeouts: number;
}

export function newRpcCounters(): RpcCounters {
  return { streams: 0, requests: 0, refusedLimits: 0, badRequests: 0, streamTimeouts: 0 };
}

/** What serveStream needs from the endpoint. */
export interface StreamServer {
  router: Router;
  counters: RpcCounters;
  /** Aborted by stop(). */
  stopSignal: AbortSignal;
  /** Who asks, as the link knows it now (trust changes when an app binds). */
  context(): Omit<RpcContext, "signal" | "method">;
  log?: Logger;
}

/**
 * Serves one peer-opened stream: read → decode → handler → answer. Never throws: network input becomes
 * counters, an answer, or a reset stream. `readable` is the stream's read side (after a peek, a copy that
 * still holds every byte).
 */
export async function serveStream(stream: QUICStream, server: StreamServer, readable: NodeReadableStream<Uint8Array> = stream.readable): Promise<void> {
  server.counters.streams++;
  server.counters.requests++;
  const wait = deadline(REQUEST_TIMEOUT_MS, "QUIC request", server.stopSignal);
  try {
    let bytes: Uint8Array | null;
    try {
      bytes = await readBounded(readable, MAX_QUIC_REQUEST_BYTES, wait.signal);
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

/** The answer to one request's bytes (through the router); never throws. */
export async function answerFor(bytes: Uint8Array, server: StreamServer, signal: AbortSignal): Promise<Uint8Array> {
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
  const served = server.router.has(req.method, "quic");
  if (!served) server.counters.badRequests++;
  const reply = await server.router.dispatch(req.method, req.payload, { ...server.context(), method: req.method, signal });
  try {
    return encodeAnswer(req, reply.status, reply.payload, reply.error);
  } catch (err) {
    server.log?.warn("QUIC answer could not be encoded", { method: req.method, error: errorLine(err) });
    return encodeAnswer(req, Status.INTERNAL, undefined, `${req.method} answer too large`);
  }
}
