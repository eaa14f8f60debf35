// One WebSocket link, either end, over the `ws` library (which does RFC 6455 framing, masking, the
// size limit and the close handshake): binary messages only, ping RTT, idle timeout, backpressure
// and close info for the mesh (DESIGN §2, §4: one binary frame per Envelope).
import type { Socket } from "node:net";
import type { RawData, WebSocket } from "ws";
import { DEFAULTS } from "../../config/index.ts";
import { localOf, remoteOf, type HostPort } from "../../contracts/index.ts";
import { MAX_WS_CLOSE_REASON_BYTES, WS_CLOSE, WS_PING_ID_BYTES, WS_SEND_HIGH_WATER_BYTES } from "./constants.ts";
import { silentLogger, type Logger } from "../../contracts/index.ts";

export interface WsConnectionInit {
  role: "server" | "client";
  /** Silence after which the connection is closed; pings go out at a third of it.
   *  @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  log?: Logger;
}

export interface WsCloseInfo {
  /** The code sent or received; 1006 when the socket went away without a close frame. */
  readonly code: number;
  readonly reason: string;
  /** True when the peer started the close (or the socket died under us). */
  readonly byPeer: boolean;
}

export interface WsHandlers {
  onMessage(data: Uint8Array): void;
  onClose(info: WsCloseInfo): void;
}

export interface WsConnection {
  readonly role: "server" | "client";
  readonly remote: HostPort;
  readonly local: HostPort;
  readonly isOpen: boolean;
  /** Round-trip time of the last answered ping, in ms; null before the first pong. */
  readonly rttMs: number | null;
  /** Bytes written but not yet taken by the kernel. */
  readonly bufferedAmount: number;
  /** Resolves once the socket is gone (after onClose). */
  readonly closed: Promise<WsCloseInfo>;
  /** Starts reading; until then incoming messages wait. Call once. */
  start(handlers: WsHandlers): void;
  /** Sends one binary message. False (nothing sent) when closed or when the peer is not reading
   *  fast enough (more than WS_SEND_HIGH_WATER_BYTES queued). */
  send(data: Uint8Array): boolean;
  /** Starts the close handshake; the socket is destroyed if the peer does not answer in time. */
  close(code?: number, reason?: string): void;
}

/** The close code our side sends when `ws` refuses a frame (its error codes; RFC 6455 §7.4.1). */
function closeCodeOfError(err: Error & { code?: string }): number | null {
  switch (err.code) {
    case "WS_ERR_UNSUPPORTED_MESSAGE_LENGTH":
    case "WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH":
      return WS_CLOSE.messageTooBig;
    case "WS_ERR_INVALID_UTF8":
    case "Z_DATA_ERROR":
      return WS_CLOSE.invalidPayload;
    case "ERR_MEMORY_ALLOCATION_FAILED":
      return WS_CLOSE.internalError;
    default:
      return err.code?.startsWith("WS_ERR_") ? WS_CLOSE.protocolError : null;
  }
}

/** Codes a peer may send (§7.4.1, §7.4.2 and the IANA registry): 1000–1003, 1007–1014, 3000–4999. */
function isSendableCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) || (code >= 3000 && code <= 4999);
}

const encoder = new TextEncoder();

/** Cuts a reason to the bytes a close frame holds, on a character boundary. */
function fitReason(reason: string): string {
  if (encoder.encode(reason).length <= MAX_WS_CLOSE_REASON_BYTES) return reason;
  let out = "";
  let bytes = 0;
  for (const ch of reason) {
    const n = encoder.encode(ch).length;
    if (bytes + n > MAX_WS_CLOSE_REASON_BYTES) break;
    out += ch;
    bytes += n;
  }
  return out;
}

function bytesOf(data: RawData): Uint8Array {
  if (Array.isArray(data)) return new Uint8Array(Buffer.concat(data));
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Wraps an open `ws` WebSocket and the socket under it. Incoming messages wait until start(). */
export function wrapWebSocket(ws: WebSocket, socket: Socket, init: WsConnectionInit): WsConnection {
  const log = init.log ?? silentLogger;
  const idleTimeoutMs = init.idleTimeoutMs ?? DEFAULTS.idle_timeout_s * 1000;
  // Captured now: a destroyed socket forgets its addresses.
  const remote = remoteOf(socket);
  const local = localOf(socket);

  let state: "new" | "open" | "closing" | "closed" = "new";
  let handlers: WsHandlers | null = null;
  /** Messages that came before start(); reading is paused meanwhile, so at most a few. */
  let early: Uint8Array[] | null = [];
  let closeInfo: WsCloseInfo | null = null;
  let idleTimer: ReturnType<typeof setInterval> | null = null;
  let lastRxAt = Date.now();
  let rttMs: number | null = null;
  let pingSeq = 0n;
  let pendingPing: { id: bigint; at: number } | null = null;
  let waitingDrain = false;
  let resolveClosed!: (info: WsCloseInfo) => void;
  const closed = new Promise<WsCloseInfo>((r) => (resolveClosed = r));

  ws.binaryType = "nodebuffer";
  ws.pause();
  const heard = () => {
    lastRxAt = Date.now();
  };
  socket.on("data", heard);
  ws.on("ping", heard);
  ws.on("pong", onPong);
  ws.on("message", onMessage);
  ws.on("error", (err: Error & { code?: string }) => {
    const code = closeCodeOfError(err);
    if (code !== null) closeInfo ??= { code, reason: err.message, byPeer: false };
    log.debug("ws error", { remote, code: err.code, error: err.message });
  });
  ws.on("close", finalize);

  function onMessage(data: RawData, isBinary: boolean): void {
    heard();
    if (state === "closing" || state === "closed") return;
    // Envelopes are binary; a text message is a peer that speaks something else (§7.4.1: 1003).
    if (!isBinary) return fail(WS_CLOSE.unsupportedData, "text messages are not accepted");
    const bytes = bytesOf(data);
    if (early) {
      early.push(bytes);
      return;
    }
    deliver(bytes);
  }

  function deliver(bytes: Uint8Array): void {
    try {
      handlers!.onMessage(bytes);
    } catch (err) {
      log.warn("ws message handler threw", { remote, error: String(err) });
    }
    // Backpressure: a peer that does not read our answers gets no more of its requests read.
    if (!waitingDrain && state === "open" && ws.bufferedAmount > WS_SEND_HIGH_WATER_BYTES) {
      waitingDrain = true;
      ws.pause();
      socket.once("drain", () => {
        waitingDrain = false;
        if (state === "open") ws.resume();
      });
    }
  }

  function onPong(data: Buffer): void {
    heard();
    if (!pendingPing || data.length !== WS_PING_ID_BYTES) return;
    if (data.readBigUInt64BE(0) !== pendingPing.id) return;
    rttMs = Math.max(0, performance.now() - pendingPing.at);
    pendingPing = null;
  }

  function sendPing(): void {
    if (state !== "open") return;
    pingSeq += 1n;
    const payload = Buffer.alloc(WS_PING_ID_BYTES);
    payload.writeBigUInt64BE(pingSeq, 0);
    pendingPing = { id: pingSeq, at: performance.now() };
    ws.ping(payload);
  }

  /** Our side ends the link: sends the code, then `ws` waits for the peer's answer or gives up. */
  function fail(code: number, reason: string): void {
    if (state === "closing" || state === "closed") return;
    closeInfo ??= { code, reason, byPeer: false };
    state = "closing";
    stopIdle();
    ws.close(code, fitReason(reason));
  }

  function stopIdle(): void {
    if (idleTimer) clearInterval(idleTimer);
    idleTimer = null;
  }

  function finalize(code: number, reason: Buffer): void {
    if (state === "closed") return;
    state = "closed";
    stopIdle();
    socket.off("data", heard);
    const text = reason.toString("utf8");
    const info = closeInfo ?? { code, reason: code === WS_CLOSE.abnormal && !text ? "connection lost" : text, byPeer: true };
    if (handlers) {
      try {
        handlers.onClose(info);
      } catch (err) {
        log.warn("ws close handler threw", { remote, error: String(err) });
      }
    }
    resolveClosed(info);
  }

  return {
    role: init.role,
    remote,
    local,
    get isOpen() {
      return state === "open";
    },
    get rttMs() {
      return rttMs;
    },
    get bufferedAmount() {
      return ws.bufferedAmount;
    },
    closed,
    start(h) {
      if (handlers) throw new Error("WsConnection.start() called twice");
      handlers = h;
      if (state !== "new") return;
      state = "open";
      const waiting = early ?? [];
      early = null;
      for (const bytes of waiting) if (state === "open") deliver(bytes);
      if (state !== "open") return;
      if (!waitingDrain) ws.resume();
      const tick = Math.max(10, Math.floor(idleTimeoutMs / 3));
      idleTimer = setInterval(() => {
        if (Date.now() - lastRxAt >= idleTimeoutMs) {
          log.debug("ws idle timeout", { remote, idleTimeoutMs });
          fail(WS_CLOSE.goingAway, "idle timeout");
          ws.terminate();
          return;
        }
        sendPing();
      }, tick);
      // One ping at once, so the RTT is known early.
      sendPing();
    },
    send(data) {
      if (state !== "open" || ws.readyState !== ws.OPEN || ws.bufferedAmount > WS_SEND_HIGH_WATER_BYTES) return false;
      ws.send(data, { binary: true });
      return true;
    },
    close(code = WS_CLOSE.normal, reason = "") {
      if (state === "closing" || state === "closed") return;
      if (state === "new") {
        closeInfo = { code, reason, byPeer: false };
        state = "closing";
        ws.terminate();
        return;
      }
      fail(isSendableCloseCode(code) ? code : WS_CLOSE.normal, reason);
    },
  };
}
