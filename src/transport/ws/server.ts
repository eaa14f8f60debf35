// The server end of the upgrade: `ws` checks the request (answering a bad one with an HTTP error),
// writes the 101 and frames the link; we wrap the result as a WsConnection.
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { WebSocketServer, type ServerOptions } from "ws";
import { MAX_WS_FRAME_BYTES } from "../../constants.ts";
import { WS_CLOSE_TIMEOUT_MS, type WsCloseTimeoutOption } from "./constants.ts";
import { wrapWebSocket, type WsConnection } from "./connection.ts";
import { silentLogger, type Logger } from "../../contracts/index.ts";

export interface WsAcceptorInit {
  /** Largest message accepted; more closes with 1009. @default MAX_WS_FRAME_BYTES */
  maxFrameBytes?: number;
  /** Passed to the connection. @default idle_timeout_s of defaults.toml */
  idleTimeoutMs?: number;
  log?: Logger;
}

export interface WsAcceptor {
  /** Finishes an upgrade the caller has admitted (path, limits). Null when the request is not a
   *  valid WebSocket upgrade: `ws` has then answered it with an HTTP error and closes the socket. */
  accept(req: IncomingMessage, socket: Socket, head: Buffer): WsConnection | null;
}

export function createWsAcceptor(init: WsAcceptorInit = {}): WsAcceptor {
  const options: ServerOptions & WsCloseTimeoutOption = {
    noServer: true,
    maxPayload: init.maxFrameBytes ?? MAX_WS_FRAME_BYTES,
    // Envelopes are small and often already sealed: compression gains little and costs memory.
    perMessageDeflate: false,
    // The endpoint keeps its own set of links; the library's would only hold them longer.
    clientTracking: false,
    closeTimeout: WS_CLOSE_TIMEOUT_MS,
  };
  const wss = new WebSocketServer(options);
  return {
    accept(req, socket, head) {
      let conn: WsConnection | null = null;
      // Without verifyClient the callback runs synchronously, or never when the request is refused.
      wss.handleUpgrade(req, socket, head, (ws) => {
        conn = wrapWebSocket(ws, socket, { role: "server", idleTimeoutMs: init.idleTimeoutMs, log: init.log ?? silentLogger });
      });
      return conn;
    },
  };
}
