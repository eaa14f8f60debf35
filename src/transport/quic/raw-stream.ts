// Raw bidirectional streams on a Findings QUIC link, next to request streams (DESIGN §4): an app's own byte
// streams (the TCP pipe, app protocols) on a punched link.
//
// Wire: a raw stream starts with RAW_STREAM_MARK (0x00), one length byte and the protocol name (UTF-8, 1 to
// MAX_RAW_PROTOCOL_BYTES bytes); the rest, both ways, is the app's bytes, ended by FIN or a reset. A request
// stream starts with a protobuf Envelope, whose first byte is a field tag and never 0x00 (field number 0 is
// invalid, protobuf encoding §Message Structure), and a request channel with MUX_STREAM_MARK (0x01), so the
// first byte tells them apart.
import type { ReadableStream as NodeReadableStream } from "node:stream/web";
import type { QUICStream } from "@matrixai/quic";
import { PeerError } from "../../errors.ts";
import { QUIC_STREAM_CODE } from "./constants.ts";
import type { QuicLink } from "./link.ts";
import { cancelStream, StreamAbort } from "./stream-io.ts";
import { MUX_STREAM_MARK } from "./mux-frame.ts";

/** First byte of a raw stream. */
export const RAW_STREAM_MARK = 0x00;
/** Longest protocol name of a raw stream, in bytes. */
export const MAX_RAW_PROTOCOL_BYTES = 64;

/** One raw stream: Web Streams both ways. Closing the writable sends FIN; the readable ends at the peer's
 *  FIN. `reset` aborts both directions (the peer's reads and writes fail). */
export interface RawStream {
  /** The protocol the opener named, e.g. "pipe". */
  readonly protocol: string;
  readonly readable: ReadableStream<Uint8Array>;
  readonly writable: WritableStream<Uint8Array>;
  /** Settles when both directions are finished (FIN or reset). */
  readonly closed: Promise<void>;
  /** Resets both directions; never throws. */
  reset(reason?: unknown): void;
}

/** Takes a raw stream a peer opened on `link`; it owns the stream from then on (read, write, or reset it). */
export type RawStreamHandler = (stream: RawStream, link: QuicLink) => void;

export function isValidRawProtocol(protocol: string): boolean {
  const n = new TextEncoder().encode(protocol).length;
  return n >= 1 && n <= MAX_RAW_PROTOCOL_BYTES;
}

export function encodeRawHeader(protocol: string): Uint8Array {
  const name = new TextEncoder().encode(protocol);
  if (name.length < 1 || name.length > MAX_RAW_PROTOCOL_BYTES) throw new PeerError(`Invalid stream protocol ${JSON.stringify(protocol)}: 1 to ${MAX_RAW_PROTOCOL_BYTES} bytes`);
  const out = new Uint8Array(2 + name.length);
  out[0] = RAW_STREAM_MARK;
  out[1] = name.length;
  out.set(name, 2);
  return out;
}

/** A readable that yields `first` (when not empty) and then the rest of `reader`, pulled on demand. */
function prefixed(first: Uint8Array, reader: ReadableStreamDefaultReader<Uint8Array>): ReadableStream<Uint8Array> {
  let pending: Uint8Array | undefined = first.length ? first : undefined;
  return new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        if (pending) {
          controller.enqueue(pending);
          pending = undefined;
          return;
        }
        const { done, value } = await reader.read();
        if (done) controller.close();
        else controller.enqueue(value);
      },
      cancel: (reason) => reader.cancel(reason),
    },
    { highWaterMark: 0 },
  );
}

export function rawStreamOf(stream: QUICStream, protocol: string, readable: ReadableStream<Uint8Array>): RawStream {
  return {
    protocol,
    readable,
    writable: stream.writable as unknown as WritableStream<Uint8Array>,
    closed: stream.closedP,
    reset: (reason) => cancelStream(stream, reason ?? new StreamAbort(QUIC_STREAM_CODE.aborted, "reset by the app")),
  };
}

/** What a peer-opened stream is: a request (its readable still holds every byte), a request channel (mark
 *  consumed: `rest` then `reader`), or a raw stream (header consumed). Throws PeerError for a malformed
 *  header, the signal's reason when it aborts first. */
export async function classifyPeerStream(
  stream: QUICStream,
  signal: AbortSignal,
): Promise<
  | { kind: "request"; readable: NodeReadableStream<Uint8Array> }
  | { kind: "mux"; reader: ReadableStreamDefaultReader<Uint8Array>; rest: Uint8Array }
  | { kind: "raw"; protocol: string; readable: ReadableStream<Uint8Array> }
> {
  const reader = (stream.readable as unknown as ReadableStream<Uint8Array>).getReader();
  const onAbort = () => void reader.cancel(signal.reason).catch(() => {});
  signal.addEventListener("abort", onAbort, { once: true });
  try {
    let buf: Uint8Array = new Uint8Array(0);
    for (;;) {
      if (signal.aborted) throw signal.reason;
      if (buf.length >= 1 && buf[0] === MUX_STREAM_MARK) return { kind: "mux", reader, rest: buf.subarray(1) };
      if (buf.length >= 1 && buf[0] !== RAW_STREAM_MARK) return { kind: "request", readable: prefixed(buf, reader) as unknown as NodeReadableStream<Uint8Array> };
      if (buf.length >= 2) {
        const n = buf[1]!;
        if (n < 1 || n > MAX_RAW_PROTOCOL_BYTES) throw new PeerError(`raw stream protocol name of ${n} bytes (allowed 1..${MAX_RAW_PROTOCOL_BYTES})`);
        if (buf.length >= 2 + n) {
          let protocol: string;
          try {
            protocol = new TextDecoder("utf-8", { fatal: true }).decode(buf.subarray(2, 2 + n));
          } catch {
            throw new PeerError("raw stream protocol name is not UTF-8");
          }
          return { kind: "raw", protocol, readable: prefixed(buf.subarray(2 + n), reader) };
        }
      }
      const { done, value } = await reader.read();
      if (done) {
        if (buf.length === 0) return { kind: "request", readable: prefixed(buf, reader) as unknown as NodeReadableStream<Uint8Array> };
        throw new PeerError("raw stream ended inside its header");
      }
      if (buf.length === 0) {
        buf = value;
        continue;
      }
      const next = new Uint8Array(buf.length + value.length);
      next.set(buf);
      next.set(value, buf.length);
      buf = next;
    }
  } finally {
    signal.removeEventListener("abort", onAbort);
  }
}
