// One WebSocket connection over an established TLS socket, either end (RFC 6455 §5–§7): binary
// messages only, ping/pong keep-alive and RTT, the close handshake, idle timeout and backpressure
// (DESIGN §2, §4: one binary frame per Envelope on the mesh).
import type { Socket } from "node:net";
import { DEFAULTS } from "../../config/defaults.ts";
import { MAX_WS_FRAME_BYTES } from "../../constants.ts";
import { localOf, remoteOf, type HostPort } from "../tls/address.ts";
import { SILENT_LOG, type TlsLog } from "../tls/log.ts";
import { WS_CLOSE, WS_CLOSE_TIMEOUT_MS, WS_OPCODE, WS_PING_ID_BYTES, WS_SEND_HIGH_WATER_BYTES } from "./constants.ts";
import { createWsReader, encodeClosePayload, encodeFrame, isSendableCloseCode, type WsEvent } from "./frame.ts";

export interface WsConnectionInit {
  /** "server": frames from the peer must be masked and ours are not; "client": the reverse. */
  role: "server" | "client";
  /** Bytes already read past the HTTP head (they belong to the first frames). */
  head?: Uint8Array;
  /** Largest frame and message accepted; more closes with 1009. @default MAX_WS_FRAME_BYTES */
  maxFrameBytes?: number;
  /** Silence after which the connection is closed; pings go out at a third of it.
   *  @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  log?: TlsLog;
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
  /** Starts reading; until then incoming bytes wait in the socket. Call once. */
  start(handlers: WsHandlers): void;
  /** Sends one binary message. False (nothing sent) when closed or when the peer is not reading
   *  fast enough (more than WS_SEND_HIGH_WATER_BYTES queued). */
  send(data: Uint8Array): boolean;
  /** Starts the close handshake; the socket is destroyed if the peer does not answer in time. */
  close(code?: number, reason?: string): void;
}

export function createWsConnection(socket: Socket, init: WsConnectionInit): WsConnection {
  const log = init.log ?? SILENT_LOG;
  const maxFrameBytes = init.maxFrameBytes ?? MAX_WS_FRAME_BYTES;
  const idleTimeoutMs = init.idleTimeoutMs ?? DEFAULTS.idle_timeout_s * 1000;
  const masked = init.role === "client";
  const reader = createWsReader({ maxFrameBytes, expectMasked: init.role === "server" });
  // Captured now: a destroyed socket forgets its addresses.
  const remote = remoteOf(socket);
  const local = localOf(socket);

  let state: "new" | "open" | "closing" | "closed" = "new";
  let handlers: WsHandlers | null = null;
  let closeInfo: WsCloseInfo | null = null;
  let finalInfo: WsCloseInfo | null = null;
  let closeTimer: ReturnType<typeof setTimeout> | null = null;
  let idleTimer: ReturnType<typeof setInterval> | null = null;
  let lastRxAt = Date.now();
  let rttMs: number | null = null;
  let pingSeq = 0n;
  let pendingPing: { id: bigint; at: number } | null = null;
  let waitingDrain = false;
  let resolveClosed!: (info: WsCloseInfo) => void;
  const closed = new Promise<WsCloseInfo>((r) => (resolveClosed = r));

  // Until start(), bytes stay in the socket (a flowing socket with no listener would drop them).
  socket.pause();
  socket.setTimeout(0);
  socket.setNoDelay?.(true);
  socket.on("error", (err) => log("debug", "ws socket error", { remote, error: err.message }));
  socket.on("close", finalize);

  function write(opcode: number, payload: Uint8Array): void {
    if (socket.destroyed || !socket.writable) return;
    socket.write(encodeFrame(opcode, payload, masked));
  }

  function onData(chunk: Buffer): void {
    lastRxAt = Date.now();
    let events: WsEvent[];
    try {
      events = reader.push(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    } catch (err) {
      // The reader is written not to throw; this is the last line so network input never crashes us.
      fail(WS_CLOSE.internalError, "internal error");
      log("warn", "ws reader threw", { remote, error: String(err) });
      return;
    }
    for (const ev of events) handleEvent(ev);
    // Backpressure: a peer that does not read our answers gets no more of its requests read.
    if (!waitingDrain && socket.writableLength > WS_SEND_HIGH_WATER_BYTES && state === "open") {
      waitingDrain = true;
      socket.pause();
      socket.once("drain", () => {
        waitingDrain = false;
        if (!socket.destroyed) socket.resume();
      });
    }
  }

  function handleEvent(ev: WsEvent): void {
    switch (ev.type) {
      case "message":
        if (state !== "open") return;
        try {
          handlers!.onMessage(ev.data);
        } catch (err) {
          log("warn", "ws message handler threw", { remote, error: String(err) });
        }
        return;
      case "ping":
        if (state === "open" && socket.writableLength <= WS_SEND_HIGH_WATER_BYTES) write(WS_OPCODE.pong, ev.data);
        return;
      case "pong":
        onPong(ev.data);
        return;
      case "close":
        if (state === "open") {
          // Echo the peer's code (§5.5.1); a close without a code is answered without one.
          write(WS_OPCODE.close, ev.code === WS_CLOSE.noStatus ? new Uint8Array(0) : encodeClosePayload(ev.code, ""));
          closeInfo = { code: ev.code, reason: ev.reason, byPeer: true };
        }
        state = "closing";
        endSocket();
        return;
      case "error":
        log("debug", "ws protocol error", { remote, code: ev.code, reason: ev.reason });
        fail(ev.code, ev.reason);
        return;
    }
  }

  function onPong(data: Uint8Array): void {
    if (!pendingPing || data.length !== WS_PING_ID_BYTES) return;
    const id = new DataView(data.buffer, data.byteOffset, data.byteLength).getBigUint64(0);
    if (id !== pendingPing.id) return;
    rttMs = Math.max(0, performance.now() - pendingPing.at);
    pendingPing = null;
  }

  function sendPing(): void {
    if (state !== "open") return;
    pingSeq += 1n;
    const payload = new Uint8Array(WS_PING_ID_BYTES);
    new DataView(payload.buffer).setBigUint64(0, pingSeq);
    pendingPing = { id: pingSeq, at: performance.now() };
    write(WS_OPCODE.ping, payload);
  }

  /** Our side ends the connection after a protocol error: send the code, stop reading, go. */
  function fail(code: number, reason: string): void {
    if (state === "closed") return;
    if (state === "open" || state === "new") write(WS_OPCODE.close, encodeClosePayload(code, reason));
    closeInfo ??= { code, reason, byPeer: false };
    state = "closing";
    endSocket();
  }

  function endSocket(): void {
    stopIdle();
    if (!socket.destroyed) socket.end();
    armCloseTimer();
  }

  function armCloseTimer(): void {
    closeTimer ??= setTimeout(() => socket.destroy(), WS_CLOSE_TIMEOUT_MS);
  }

  function stopIdle(): void {
    if (idleTimer) clearInterval(idleTimer);
    idleTimer = null;
  }

  function finalize(): void {
    if (state === "closed" && finalInfo) return;
    state = "closed";
    stopIdle();
    if (closeTimer) clearTimeout(closeTimer);
    closeTimer = null;
    finalInfo = closeInfo ?? { code: WS_CLOSE.abnormal, reason: "connection lost", byPeer: true };
    if (handlers) {
      try {
        handlers.onClose(finalInfo);
      } catch (err) {
        log("warn", "ws close handler threw", { remote, error: String(err) });
      }
    }
    resolveClosed(finalInfo);
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
      return socket.writableLength;
    },
    closed,
    start(h) {
      if (handlers) throw new Error("WsConnection.start() called twice");
      handlers = h;
      if (state === "closed") {
        // The socket died before anyone listened: report it all the same.
        queueMicrotask(() => h.onClose(finalInfo!));
        return;
      }
      if (state === "closing") return;
      state = "open";
      socket.on("data", onData);
      if (init.head?.length) onData(Buffer.from(init.head));
      if (state !== "open") return;
      socket.resume();
      const tick = Math.max(10, Math.floor(idleTimeoutMs / 3));
      idleTimer = setInterval(() => {
        if (Date.now() - lastRxAt >= idleTimeoutMs) {
          log("debug", "ws idle timeout", { remote, idleTimeoutMs });
          fail(WS_CLOSE.goingAway, "idle timeout");
          socket.destroy();
          return;
        }
        sendPing();
      }, tick);
      // One ping at once, so the RTT is known early.
      sendPing();
    },
    send(data) {
      if (state !== "open" || socket.writableLength > WS_SEND_HIGH_WATER_BYTES) return false;
      write(WS_OPCODE.binary, data);
      return true;
    },
    close(code = WS_CLOSE.normal, reason = "") {
      if (state === "closed" || state === "closing") return;
      if (state === "new") {
        closeInfo = { code, reason, byPeer: false };
        state = "closing";
        socket.destroy();
        return;
      }
      const sendable = isSendableCloseCode(code) ? code : WS_CLOSE.normal;
      write(WS_OPCODE.close, encodeClosePayload(sendable, reason));
      closeInfo = { code: sendable, reason, byPeer: false };
      state = "closing";
      stopIdle();
      // We wait for the peer's close frame (handled in handleEvent → endSocket), or give up.
      armCloseTimer();
    },
  };
}
