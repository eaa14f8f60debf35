// A hand-made WebSocket peer for conformance tests (RFC 6455 bytes over real TLS): it writes frames
// the `ws` library would never make and reads what the other end answers. Test code only: src has
// no framing of its own.
import { createHash } from "node:crypto";
import * as tls from "node:tls";

export const OP = { continuation: 0x0, text: 0x1, binary: 0x2, close: 0x8, ping: 0x9, pong: 0xa } as const;

/** Sec-WebSocket-Accept for a key (RFC 6455 §1.3). */
export function acceptKeyOf(key: string): string {
  return createHash("sha1").update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest("base64");
}

/** One frame with the header written by hand; `len7`/`ext` override the length fields, for frames
 *  no library makes. A masked frame uses a random key. */
export function rawFrame(b0: number, payload: Uint8Array, opts: { mask?: boolean; len7?: number; ext?: Uint8Array } = {}): Uint8Array {
  const mask = opts.mask ?? true;
  const n = payload.length;
  const len7 = opts.len7 ?? (n < 126 ? n : n < 65536 ? 126 : 127);
  let ext = opts.ext;
  if (!ext) {
    ext = new Uint8Array(len7 === 126 ? 2 : len7 === 127 ? 8 : 0);
    const view = new DataView(ext.buffer);
    if (len7 === 126) view.setUint16(0, n);
    else if (len7 === 127) view.setBigUint64(0, BigInt(n));
  }
  const key = mask ? crypto.getRandomValues(new Uint8Array(4)) : new Uint8Array(0);
  const out = new Uint8Array(2 + ext.length + key.length + n);
  out[0] = b0;
  out[1] = (mask ? 0x80 : 0) | len7;
  out.set(ext, 2);
  out.set(key, 2 + ext.length);
  const body = out.subarray(2 + ext.length + key.length);
  body.set(payload);
  if (mask) for (let i = 0; i < n; i++) body[i]! ^= key[i & 3]!;
  return out;
}

/** A whole frame (FIN set) with the shortest length encoding. */
export function frame(opcode: number, payload: Uint8Array, mask = true): Uint8Array {
  return rawFrame(0x80 | opcode, payload, { mask });
}

export function closePayload(code: number, reason = ""): Uint8Array {
  const text = new TextEncoder().encode(reason);
  const out = new Uint8Array(2 + text.length);
  new DataView(out.buffer).setUint16(0, code);
  out.set(text, 2);
  return out;
}

export type PeerFrame =
  | { type: "message" | "text" | "ping" | "pong"; data: Uint8Array; masked: boolean }
  | { type: "close"; code: number; reason: string; length: number; masked: boolean };

/** Reads whole frames (no fragments: neither `ws` end sends them to us) from a byte stream. */
export function createFrameParser(): { push(chunk: Uint8Array): PeerFrame[] } {
  let buf = new Uint8Array(0);
  return {
    push(chunk) {
      const joined = new Uint8Array(buf.length + chunk.length);
      joined.set(buf);
      joined.set(chunk, buf.length);
      buf = joined;
      const out: PeerFrame[] = [];
      for (;;) {
        if (buf.length < 2) break;
        const masked = (buf[1]! & 0x80) !== 0;
        const len7 = buf[1]! & 0x7f;
        const extBytes = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
        if (buf.length < 2 + extBytes) break;
        const view = new DataView(buf.buffer, buf.byteOffset);
        const n = len7 === 126 ? view.getUint16(2) : len7 === 127 ? Number(view.getBigUint64(2)) : len7;
        const start = 2 + extBytes + (masked ? 4 : 0);
        if (buf.length < start + n) break;
        const data = buf.slice(start, start + n);
        if (masked) for (let i = 0; i < n; i++) data[i]! ^= buf[2 + extBytes + (i & 3)]!;
        const opcode = buf[0]! & 0x0f;
        buf = buf.slice(start + n);
        if (opcode === OP.close) {
          const code = n >= 2 ? (data[0]! << 8) | data[1]! : 1005;
          out.push({ type: "close", code, reason: new TextDecoder().decode(data.subarray(2)), length: n, masked });
        } else {
          const type = opcode === OP.text ? "text" : opcode === OP.ping ? "ping" : opcode === OP.pong ? "pong" : "message";
          out.push({ type, data, masked });
        }
      }
      return out;
    },
  };
}

export interface RawWs {
  readonly socket: tls.TLSSocket;
  /** HTTP status of the answer; 0 when the server closed without one. */
  readonly status: number;
  /** The answer's head (status line and headers). */
  readonly head: string;
  /** Frames the server sent after its 101, appended as they come. */
  readonly frames: PeerFrame[];
}

export interface RawUpgrade {
  path?: string;
  method?: string;
  key?: string;
  /** Replaces or adds headers of the request (a null value drops one). */
  headers?: Record<string, string | null>;
}

/** TLS, a hand-written upgrade request, then raw bytes. `sockets` collects the socket for cleanup. */
export async function rawWs(port: number, req: RawUpgrade = {}, sockets?: { push(s: tls.TLSSocket): unknown }): Promise<RawWs> {
  const socket = tls.connect({ host: "127.0.0.1", port, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] });
  sockets?.push(socket);
  socket.on("error", () => {});
  await new Promise<void>((r) => socket.once("secureConnect", () => r()));
  const headers: Record<string, string | null> = {
    Host: `127.0.0.1:${port}`,
    Upgrade: "websocket",
    Connection: "Upgrade",
    "Sec-WebSocket-Key": req.key ?? Buffer.from(crypto.getRandomValues(new Uint8Array(16))).toString("base64"),
    "Sec-WebSocket-Version": "13",
    ...req.headers,
  };
  const lines = Object.entries(headers).filter((e): e is [string, string] => e[1] !== null);
  socket.write(`${req.method ?? "GET"} ${req.path ?? "/mesh"} HTTP/1.1\r\n${lines.map(([k, v]) => `${k}: ${v}\r\n`).join("")}\r\n`);
  const parser = createFrameParser();
  const frames: PeerFrame[] = [];
  let pending: Buffer | null = Buffer.alloc(0);
  const answer = await new Promise<{ status: number; head: string }>((resolve) => {
    socket.on("data", (chunk: Buffer) => {
      if (!pending) {
        frames.push(...parser.push(chunk));
        return;
      }
      const joined: Buffer = Buffer.concat([pending, chunk]);
      const end = joined.indexOf("\r\n\r\n");
      if (end < 0) {
        pending = joined;
        return;
      }
      pending = null;
      const head = joined.toString("latin1", 0, end);
      resolve({ status: Number(head.slice(9, 12)), head });
      frames.push(...parser.push(joined.subarray(end + 4)));
    });
    socket.once("close", () => resolve({ status: 0, head: "" }));
  });
  return { socket, ...answer, frames };
}

/** First close frame the peer sent, if any. */
export function closeOf(frames: PeerFrame[]): Extract<PeerFrame, { type: "close" }> | undefined {
  return frames.find((f): f is Extract<PeerFrame, { type: "close" }> => f.type === "close");
}

/** Data messages the peer sent, in order. */
export function messagesOf(frames: PeerFrame[]): Uint8Array[] {
  return frames.flatMap((f) => (f.type === "message" ? [f.data] : []));
}

/** Resolves true once the socket has closed, false after `ms`. */
export function closedWithin(socket: { destroyed: boolean; once(e: "close", cb: () => void): unknown }, ms: number): Promise<boolean> {
  if (socket.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    socket.once("close", () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}
