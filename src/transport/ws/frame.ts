// WebSocket frame encoding and an incremental, size-checked frame reader (RFC 6455 §5, §7.4).
// Pure: no sockets, no timers. The reader checks a frame's declared length against the limit
// from its header, before buffering the payload (STYLE §6).
import { MAX_WS_CONTROL_PAYLOAD_BYTES, WS_CLOSE, WS_OPCODE } from "./constants.ts";

/** What the reader hands up: whole messages (fragments joined), control frames, or the one error
 *  that ends the connection (with the close code to send). */
export type WsEvent =
  | { type: "message"; data: Uint8Array }
  | { type: "ping"; data: Uint8Array }
  | { type: "pong"; data: Uint8Array }
  | { type: "close"; code: number; reason: string }
  | { type: "error"; code: number; reason: string };

export interface WsReaderInit {
  /** Largest frame payload and largest joined message, in bytes; more closes with 1009. */
  maxFrameBytes: number;
  /** Server side: every frame from the client must be masked; client side: none may be (§5.1). */
  expectMasked: boolean;
}

export interface WsReader {
  /** Feeds bytes; returns what became complete. After an "error" or "close" event the reader
   *  ignores everything else. */
  push(chunk: Uint8Array): WsEvent[];
  /** Bytes held while waiting for the rest of a frame. */
  readonly buffered: number;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });
const encoder = new TextEncoder();

export function createWsReader(init: WsReaderInit): WsReader {
  const queue = createByteQueue();
  let done = false;
  // Fragments of a data message in progress (§5.4).
  let fragments: Uint8Array[] | null = null;
  let fragmentBytes = 0;

  function fail(events: WsEvent[], code: number, reason: string): WsEvent[] {
    done = true;
    queue.clear();
    fragments = null;
    events.push({ type: "error", code, reason });
    return events;
  }

  function push(chunk: Uint8Array): WsEvent[] {
    const events: WsEvent[] = [];
    if (done) return events;
    queue.push(chunk);
    while (!done && queue.length >= 2) {
      const h = queue.peek(2);
      const b0 = h[0]!;
      const b1 = h[1]!;
      const fin = (b0 & 0x80) !== 0;
      const opcode = b0 & 0x0f;
      const masked = (b1 & 0x80) !== 0;
      const len7 = b1 & 0x7f;
      // We negotiate no extension, so every RSV bit must be clear (§5.2).
      if (b0 & 0x70) return fail(events, WS_CLOSE.protocolError, "reserved bits set");
      if (masked !== init.expectMasked) {
        return fail(events, WS_CLOSE.protocolError, init.expectMasked ? "client frame not masked" : "server frame masked");
      }
      const isControl = (opcode & 0x08) !== 0;
      if (!isKnownOpcode(opcode)) return fail(events, WS_CLOSE.protocolError, `unknown opcode ${opcode}`);
      if (isControl && (!fin || len7 > MAX_WS_CONTROL_PAYLOAD_BYTES)) {
        return fail(events, WS_CLOSE.protocolError, "control frame fragmented or over 125 bytes");
      }
      const lenBytes = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      const headerBytes = 2 + lenBytes + (masked ? 4 : 0);
      if (queue.length < 2 + lenBytes) break;
      let length = len7;
      if (lenBytes) {
        const ext = queue.peek(2 + lenBytes).subarray(2);
        const view = new DataView(ext.buffer, ext.byteOffset, ext.byteLength);
        if (lenBytes === 2) {
          length = view.getUint16(0);
          if (length < 126) return fail(events, WS_CLOSE.protocolError, "length not minimally encoded");
        } else {
          const big = view.getBigUint64(0);
          if (big >> 63n) return fail(events, WS_CLOSE.protocolError, "64-bit length has its top bit set");
          if (big > BigInt(init.maxFrameBytes)) {
            return fail(events, WS_CLOSE.messageTooBig, `frame of ${big} bytes is over the limit of ${init.maxFrameBytes}`);
          }
          length = Number(big);
          if (length < 65536) return fail(events, WS_CLOSE.protocolError, "length not minimally encoded");
        }
      }
      // The size check comes from the header alone: nothing of an oversized frame is buffered.
      if (length > init.maxFrameBytes) {
        return fail(events, WS_CLOSE.messageTooBig, `frame of ${length} bytes is over the limit of ${init.maxFrameBytes}`);
      }
      if (opcode === WS_OPCODE.continuation && fragments && fragmentBytes + length > init.maxFrameBytes) {
        return fail(events, WS_CLOSE.messageTooBig, `message over the limit of ${init.maxFrameBytes} bytes`);
      }
      if (queue.length < headerBytes + length) break;
      const frame = queue.take(headerBytes + length);
      const payload = frame.subarray(headerBytes);
      if (masked) unmask(payload, frame.subarray(headerBytes - 4, headerBytes));

      if (isControl) {
        if (opcode === WS_OPCODE.ping) events.push({ type: "ping", data: payload });
        else if (opcode === WS_OPCODE.pong) events.push({ type: "pong", data: payload });
        else {
          const parsed = parseClosePayload(payload);
          if ("error" in parsed) return fail(events, WS_CLOSE.protocolError, parsed.error);
          done = true;
          queue.clear();
          events.push({ type: "close", code: parsed.code, reason: parsed.reason });
        }
        continue;
      }
      if (opcode === WS_OPCODE.continuation) {
        if (!fragments) return fail(events, WS_CLOSE.protocolError, "continuation frame without a message");
      } else {
        if (fragments) return fail(events, WS_CLOSE.protocolError, "new message before the last one ended");
        // Envelopes are binary; a text message is a peer that speaks something else (§7.4.1: 1003).
        if (opcode === WS_OPCODE.text) return fail(events, WS_CLOSE.unsupportedData, "text messages are not accepted");
        fragments = [];
        fragmentBytes = 0;
      }
      fragments.push(payload);
      fragmentBytes += payload.length;
      if (fin) {
        events.push({ type: "message", data: fragments.length === 1 ? fragments[0]! : concat(fragments, fragmentBytes) });
        fragments = null;
        fragmentBytes = 0;
      }
    }
    return events;
  }

  return {
    push,
    get buffered() {
      return queue.length + fragmentBytes;
    },
  };
}

/** One frame, FIN set. Clients mask every frame with a fresh random key (§5.3); servers never do. */
export function encodeFrame(opcode: number, payload: Uint8Array, mask: boolean): Uint8Array {
  const len = payload.length;
  const lenBytes = len < 126 ? 0 : len < 65536 ? 2 : 8;
  const headerBytes = 2 + lenBytes + (mask ? 4 : 0);
  const out = new Uint8Array(headerBytes + len);
  out[0] = 0x80 | opcode;
  out[1] = (mask ? 0x80 : 0) | (lenBytes === 0 ? len : lenBytes === 2 ? 126 : 127);
  const view = new DataView(out.buffer);
  if (lenBytes === 2) view.setUint16(2, len);
  else if (lenBytes === 8) view.setBigUint64(2, BigInt(len));
  out.set(payload, headerBytes);
  if (mask) {
    const key = crypto.getRandomValues(new Uint8Array(4));
    out.set(key, headerBytes - 4);
    unmask(out.subarray(headerBytes), key);
  }
  return out;
}

/** Close frame payload: 2-byte code plus UTF-8 reason, cut to fit the 125-byte control limit. */
export function encodeClosePayload(code: number, reason: string): Uint8Array {
  let text = encoder.encode(reason);
  if (text.length > MAX_WS_CONTROL_PAYLOAD_BYTES - 2) text = encoder.encode(cutUtf8(reason, MAX_WS_CONTROL_PAYLOAD_BYTES - 2));
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

/** Codes a peer may send (§7.4.1, §7.4.2 and the IANA registry): 1000–1003, 1007–1014, 3000–4999. */
export function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

function parseClosePayload(p: Uint8Array): { code: number; reason: string } | { error: string } {
  if (p.length === 0) return { code: WS_CLOSE.noStatus, reason: "" };
  if (p.length === 1) return { error: "close frame with a 1-byte body" };
  const code = (p[0]! << 8) | p[1]!;
  if (!isSendableCloseCode(code)) return { error: `close code ${code} is not allowed on the wire` };
  try {
    return { code, reason: utf8.decode(p.subarray(2)) };
  } catch {
    return { error: "close reason is not UTF-8" };
  }
}

function isKnownOpcode(op: number): boolean {
  return op === 0x0 || op === 0x1 || op === 0x2 || op === 0x8 || op === 0x9 || op === 0xa;
}

function unmask(data: Uint8Array, key: Uint8Array): void {
  for (let i = 0; i < data.length; i++) data[i]! ^= key[i & 3]!;
}

function concat(parts: Uint8Array[], total: number): Uint8Array {
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function cutUtf8(text: string, maxBytes: number): string {
  let out = "";
  let bytes = 0;
  for (const ch of text) {
    const n = encoder.encode(ch).length;
    if (bytes + n > maxBytes) break;
    out += ch;
    bytes += n;
  }
  return out;
}

/** Chunks held without copying until a whole frame is there, so a frame dribbled in one byte at a
 *  time costs one copy, not one per byte. */
function createByteQueue() {
  let chunks: Uint8Array[] = [];
  let length = 0;
  return {
    get length() {
      return length;
    },
    push(chunk: Uint8Array) {
      if (chunk.length) {
        chunks.push(chunk);
        length += chunk.length;
      }
    },
    clear() {
      chunks = [];
      length = 0;
    },
    /** A copy of the first n bytes (n ≤ length), leaving them queued. */
    peek(n: number): Uint8Array {
      if (chunks[0]!.length >= n) return chunks[0]!.subarray(0, n);
      const out = new Uint8Array(n);
      let at = 0;
      for (const c of chunks) {
        const part = c.subarray(0, n - at);
        out.set(part, at);
        at += part.length;
        if (at === n) break;
      }
      return out;
    },
    /** Removes and returns the first n bytes as one writable copy (unmasking happens in place). */
    take(n: number): Uint8Array {
      const out = new Uint8Array(n);
      let at = 0;
      while (at < n) {
        const c = chunks[0]!;
        const need = n - at;
        if (c.length <= need) {
          out.set(c, at);
          at += c.length;
          chunks.shift();
        } else {
          out.set(c.subarray(0, need), at);
          chunks[0] = c.subarray(need);
          at += need;
        }
      }
      length -= n;
      return out;
    },
  };
}
