// Framing of a request channel: one long-lived bidirectional QUIC stream that carries many requests and
// their answers (DESIGN §4), instead of one stream per request.
//
// Wire: the opener's first byte is MUX_STREAM_MARK (0x01); then, both ways, frames of a length (unsigned
// LEB128 varint, at most MAX_FRAME_LENGTH_BYTES bytes) followed by that many bytes of one Envelope. Answers
// carry the id of their request and may come in any order. 0x01 never starts a request stream (it would be
// protobuf field 0, which is invalid) nor a raw stream (RAW_STREAM_MARK is 0x00), so the first byte tells
// the three kinds apart.

/** First byte of a request channel. */
export const MUX_STREAM_MARK = 0x01;
/** Longest length prefix: 4 varint bytes hold up to 2^28 - 1, far above any frame limit. */
const MAX_FRAME_LENGTH_BYTES = 4;

/** A frame announced or grown beyond the reader's limit. */
export class FrameTooLargeError extends Error {
  constructor(readonly length: number, readonly limit: number) {
    super(`frame of ${length} bytes (limit ${limit})`);
    this.name = "FrameTooLargeError";
  }
}

/** `body` with its length prefix. */
export function encodeFrame(body: Uint8Array): Uint8Array {
  let n = body.length;
  let prefix = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    prefix++;
  }
  const out = new Uint8Array(prefix + body.length);
  n = body.length;
  for (let i = 0; i < prefix; i++) {
    out[i] = (n & 0x7f) | (i < prefix - 1 ? 0x80 : 0);
    n = Math.floor(n / 0x80);
  }
  out.set(body, prefix);
  return out;
}

/** Joins byte arrays (one write for many frames). */
export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  if (parts.length === 1) return parts[0]!;
  let total = 0;
  for (const p of parts) total += p.length;
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** Cuts a byte stream into frames. Holds at most one partial frame (≤ limit + prefix) plus one chunk, and
 *  copies each byte at most twice however the sender splits its frames (no quadratic cost for a peer that
 *  sends a large frame a byte at a time). */
export class FrameReader {
  private buf: Uint8Array = new Uint8Array(0);
  private at = 0;
  /** Chunks received after `buf`, joined only when a frame (or a length prefix) needs them. */
  private pending: Uint8Array[] = [];
  private pendingBytes = 0;
  constructor(private readonly limit: number) {}

  /** Bytes received and not yet returned as frames. */
  get buffered(): number {
    return this.buf.length - this.at + this.pendingBytes;
  }

  push(chunk: Uint8Array): void {
    if (chunk.length === 0) return;
    if (this.at >= this.buf.length && this.pending.length === 0) {
      this.buf = chunk;
      this.at = 0;
      return;
    }
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
  }

  /** The next whole frame, or undefined until more bytes arrive. Throws FrameTooLargeError when a length
   *  prefix announces more than the limit (or does not end within MAX_FRAME_LENGTH_BYTES). */
  next(): Uint8Array | undefined {
    for (;;) {
      const buf = this.buf;
      let i = this.at;
      let length = 0;
      let complete = false;
      for (let shift = 0; i < buf.length; shift += 7) {
        if (i - this.at >= MAX_FRAME_LENGTH_BYTES) throw new FrameTooLargeError(Infinity, this.limit);
        const b = buf[i++]!;
        length += (b & 0x7f) * 2 ** shift;
        if ((b & 0x80) === 0) {
          complete = true;
          break;
        }
      }
      if (!complete) {
        if (i - this.at >= MAX_FRAME_LENGTH_BYTES) throw new FrameTooLargeError(Infinity, this.limit);
        if (this.pending.length === 0) return undefined;
        this.join();
        continue;
      }
      if (length > this.limit) throw new FrameTooLargeError(length, this.limit);
      if (buf.length - i >= length) {
        this.at = i + length;
        return buf.subarray(i, i + length);
      }
      if (buf.length - i + this.pendingBytes < length) return undefined;
      this.join();
    }
  }

  /** Moves the pending chunks behind what is left of `buf`, in one copy. */
  private join(): void {
    const rest = this.buf.subarray(this.at);
    const joined = new Uint8Array(rest.length + this.pendingBytes);
    joined.set(rest);
    let at = rest.length;
    for (const c of this.pending) {
      joined.set(c, at);
      at += c.length;
    }
    this.buf = joined;
    this.at = 0;
    this.pending = [];
    this.pendingBytes = 0;
  }
}
