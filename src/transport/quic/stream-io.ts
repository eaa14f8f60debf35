// QUIC stream plumbing for Findings requests: bounded reads, write-and-FIN, resets with our codes, deadlines
// (DESIGN §4, STYLE §3 "every network wait takes an AbortSignal", §6 limits).
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { QUICStream } from "@matrixai/quic";
import { PeerError, TimeoutError } from "../../errors.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";

/** The reason carried into a stream reset; reasonToCode turns it into the wire code. */
export class StreamAbort extends Error {
  constructor(readonly streamCode: number, message: string) {
    super(message);
    this.name = "StreamAbort";
  }
}

const CODE_NAMES: Record<number, string> = Object.fromEntries(Object.entries(QUIC_STREAM_CODE).map(([k, v]) => [v, k]));

/** For QUICServer / QUICClient `reasonToCode`. */
export function streamReasonToCode(_type: "read" | "write", reason?: unknown): number {
  if (reason instanceof StreamAbort) return reason.streamCode;
  if (reason instanceof TimeoutError) return QUIC_STREAM_CODE.timeout;
  return QUIC_STREAM_CODE.aborted;
}

/** For QUICServer / QUICClient `codeToReason`: what a read or write on a reset stream rejects with. */
export function streamCodeToReason(type: "read" | "write", code: number): unknown {
  const name = CODE_NAMES[code] ?? `code ${code}`;
  return new PeerError(`Peer reset the QUIC stream (${type} side): ${name}`);
}

/** A timeout plus an optional caller signal, with cleanup (no timer outlives the wait). */
export function deadline(ms: number, what: string, parent?: AbortSignal): { signal: AbortSignal; done(): void } {
  const ac = new AbortController();
  const timer = setTimeout(() => ac.abort(new TimeoutError(what, ms)), ms);
  const onParent = () => ac.abort(parent!.reason);
  if (parent?.aborted) ac.abort(parent.reason);
  else parent?.addEventListener("abort", onParent, { once: true });
  return {
    signal: ac.signal,
    done() {
      clearTimeout(timer);
      parent?.removeEventListener("abort", onParent);
    },
  };
}

/** Reads a stream to its end, or stops at `limit` + 1 bytes and returns null (the caller resets the
 *  stream). Flow control (quic-config STREAM_WINDOW_BYTES) already keeps the peer from sending much more.
 *  Throws the signal's reason when aborted, or the stream's error. */
export async function readBounded(readable: NodeReadableStream<Uint8Array>, limit: number, signal: AbortSignal): Promise<Uint8Array | null> {
  const reader = readable.getReader();
  const onAbort = () => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  const chunks: Uint8Array[] = [];
  let total = 0;
  try {
    if (signal.aborted) throw signal.reason;
    while (true) {
      const { done, value } = await reader.read();
      if (signal.aborted) throw signal.reason;
      if (done) break;
      total += value.length;
      if (total > limit) return null;
      chunks.push(value);
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
    reader.releaseLock();
  }
  if (chunks.length === 1) return chunks[0]!;
  const out = new Uint8Array(total);
  let at = 0;
  for (const c of chunks) {
    out.set(c, at);
    at += c.length;
  }
  return out;
}

/** Writes `bytes` and closes the write side (FIN), or throws the signal's reason / the stream's error. */
export async function writeAndClose(stream: QUICStream, bytes: Uint8Array, signal: AbortSignal): Promise<void> {
  const writer = stream.writable.getWriter();
  const onAbort = () => cancelStream(stream, signal.reason);
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    if (signal.aborted) throw signal.reason;
    await writer.write(bytes);
    await writer.close();
    if (signal.aborted) throw signal.reason;
  } finally {
    signal.removeEventListener("abort", onAbort);
    writer.releaseLock();
  }
}

/** Resets both directions; never throws (the stream may already be closed or its connection gone). */
export function cancelStream(stream: QUICStream, reason: unknown): void {
  try {
    stream.cancel(reason instanceof StreamAbort || reason instanceof TimeoutError ? reason : new StreamAbort(QUIC_STREAM_CODE.aborted, "aborted"));
  } catch {
    // Already closed: nothing to reset.
  }
}

/** Resolves with `p`, or rejects with the signal's reason as soon as it aborts. */
export function raceSignal<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    const onAbort = () => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(
      (v) => {
        signal.removeEventListener("abort", onAbort);
        resolve(v);
      },
      (e) => {
        signal.removeEventListener("abort", onAbort);
        reject(e);
      },
    );
  });
}
