// The answering side of a request channel (mux-frame.ts): many framed requests on one peer-opened stream,
// each through the router as if it had its own stream (same policy, same per-request metrics).
//
// Limits: at most MAX_MUX_CHANNELS_PER_LINK channels per connection (more are reset, code refused, by the
// endpoint); a frame over MAX_QUIC_REQUEST_BYTES resets the stream (code tooLarge); at most
// MAX_MUX_IN_FLIGHT requests of one channel run at once, beyond that the channel is not read (QUIC flow
// control then holds the sender back); a handler gets REQUEST_TIMEOUT_MS and is then answered "did not
// finish in time"; an answer write blocked longer than REQUEST_TIMEOUT_MS resets the stream (code timeout).
// One coarse timer per busy channel enforces both deadlines; an idle channel holds no timer.
import type { QUICStream } from "@matrixai/quic";
import { MAX_QUIC_REQUEST_BYTES, REQUEST_TIMEOUT_MS } from "../../constants.ts";
import { TimeoutError, errorLine } from "../../errors.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";
import { concatBytes, encodeFrame, FrameReader, FrameTooLargeError } from "./mux-frame.ts";
import { answerFor, type StreamServer } from "./rpc.ts";
import { cancelStream, StreamAbort } from "./stream-io.ts";

/** Request channels a peer may hold open on one connection: a requester uses one at a time (two while one
 *  finishes). An idle channel has no deadline, so this bounds what idle channels can make a node keep. */
export const MAX_MUX_CHANNELS_PER_LINK = 4;
/** Requests of one channel that run at once (the same bound as one per stream under the stream credit). */
export const MAX_MUX_IN_FLIGHT = 64;
/** How often a busy channel checks its deadlines, in ms: a deadline fires up to this late. */
const MUX_SWEEP_MS = 250;

/** Serves a request channel whose mark byte is consumed: `first` holds the bytes read after it, `reader`
 *  the rest of the stream. Never throws; resolves when the channel is finished or reset. */
export async function serveMuxStream(
  stream: QUICStream,
  reader: ReadableStreamDefaultReader<Uint8Array>,
  first: Uint8Array,
  server: StreamServer,
): Promise<void> {
  server.counters.streams++;
  const frames = new FrameReader(MAX_QUIC_REQUEST_BYTES);
  frames.push(first);
  const writer = (stream.writable as unknown as WritableStream<Uint8Array>).getWriter();
  /** Running requests → when they started. */
  const running = new Map<AbortController, number>();
  let out: Uint8Array[] = [];
  let writingSince: number | undefined;
  let flushQueued = false;
  let failed = false;
  let resume: (() => void) | undefined;
  let drained: (() => void) | undefined;
  let sweep: ReturnType<typeof setInterval> | undefined;

  const wakeReader = () => {
    const r = resume;
    resume = undefined;
    r?.();
  };
  const checkDrained = () => {
    if (running.size === 0 && out.length === 0 && writingSince === undefined) drained?.();
  };
  const fail = (reason: unknown) => {
    if (failed) return;
    failed = true;
    cancelStream(stream, reason);
    for (const ac of running.keys()) ac.abort(reason);
    wakeReader();
    drained?.();
  };
  const onStop = () => fail(server.stopSignal.reason);
  if (server.stopSignal.aborted) onStop();
  else server.stopSignal.addEventListener("abort", onStop, { once: true });

  const busy = () => running.size > 0 || writingSince !== undefined;
  const armSweep = () => {
    if (sweep || !busy()) return;
    sweep = setInterval(() => {
      const now = performance.now();
      for (const [ac, since] of running) {
        if (now - since >= REQUEST_TIMEOUT_MS && !ac.signal.aborted) ac.abort(new TimeoutError("QUIC request", REQUEST_TIMEOUT_MS));
      }
      if (writingSince !== undefined && now - writingSince >= REQUEST_TIMEOUT_MS) {
        server.counters.streamTimeouts++;
        fail(new TimeoutError("QUIC answer", REQUEST_TIMEOUT_MS));
      }
      if (!busy() || failed) {
        clearInterval(sweep);
        sweep = undefined;
      }
    }, MUX_SWEEP_MS);
    (sweep as { unref?: () => void }).unref?.();
  };

  /** Writes every queued answer in one write; answers finished meanwhile go in the next one. */
  const flush = () => {
    flushQueued = false;
    if (failed || writingSince !== undefined || out.length === 0) return;
    const bytes = concatBytes(out);
    out = [];
    writingSince = performance.now();
    armSweep();
    writer.write(bytes).then(
      () => {
        writingSince = undefined;
        if (out.length > 0) flush();
        else checkDrained();
      },
      (err: unknown) => {
        writingSince = undefined;
        fail(err);
      },
    );
  };

  const handle = (bytes: Uint8Array) => {
    server.counters.requests++;
    const ac = new AbortController();
    running.set(ac, performance.now());
    armSweep();
    answerFor(bytes, server, ac.signal)
      .then(
        (answer) => {
          if (failed) return;
          out.push(encodeFrame(answer));
          if (!flushQueued) {
            flushQueued = true;
            queueMicrotask(flush);
          }
        },
        (err: unknown) => server.log?.error("QUIC request handling failed", { error: errorLine(err) }),
      )
      .finally(() => {
        running.delete(ac);
        if (running.size < MAX_MUX_IN_FLIGHT) wakeReader();
        checkDrained();
      });
  };

  try {
    for (;;) {
      for (let frame = frames.next(); frame !== undefined; frame = frames.next()) {
        handle(frame);
        if (running.size >= MAX_MUX_IN_FLIGHT) await new Promise<void>((r) => (resume = r));
        if (failed) return;
      }
      const { done, value } = await reader.read();
      if (failed) return;
      if (done) break;
      frames.push(value);
    }
    if (frames.buffered > 0) {
      fail(new StreamAbort(QUIC_STREAM_CODE.aborted, "channel ended inside a frame"));
      return;
    }
    // The peer finished: answer what is running, then finish our side.
    await new Promise<void>((r) => {
      drained = r;
      checkDrained();
    });
    if (!failed) await writer.close().catch(() => {});
  } catch (err) {
    if (err instanceof FrameTooLargeError) {
      server.counters.refusedLimits++;
      fail(new StreamAbort(QUIC_STREAM_CODE.tooLarge, `request over ${MAX_QUIC_REQUEST_BYTES} bytes`));
    } else fail(err);
  } finally {
    server.stopSignal.removeEventListener("abort", onStop);
    if (sweep) clearInterval(sweep);
    try {
      writer.releaseLock();
      reader.releaseLock();
    } catch {
      // A pending read or write keeps its lock until the reset settles it.
    }
  }
}
