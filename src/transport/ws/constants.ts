// WebSocket close codes (RFC 6455 §7.4) and the limits we set on the mesh endpoint's links
// (DESIGN §2, §4). Framing and the opening handshake are the `ws` library's.

/** Close codes (RFC 6455 §7.4.1). 1005 and 1006 are never sent, only reported. */
export const WS_CLOSE = {
  normal: 1000,
  goingAway: 1001,
  protocolError: 1002,
  unsupportedData: 1003,
  noStatus: 1005,
  abnormal: 1006,
  invalidPayload: 1007,
  policyViolation: 1008,
  messageTooBig: 1009,
  internalError: 1011,
} as const;

/** A close reason fits a control frame: 125 bytes less the 2-byte code (RFC 6455 §5.5). */
export const MAX_WS_CLOSE_REASON_BYTES = 123;

/** How long we wait for the peer's close frame (and then for TCP to end) after sending ours,
 *  before destroying the socket, in ms. A live peer answers in one RTT. */
export const WS_CLOSE_TIMEOUT_MS = 1_000;

/** `ws` takes the close wait as `closeTimeout` (client and server); @types/ws does not list it yet. */
export interface WsCloseTimeoutOption {
  closeTimeout?: number;
}

/** Bytes queued in the socket above which send() refuses and reading pauses (backpressure): 16
 *  full envelopes; a peer that leaves this much unread is slow or hostile. */
export const WS_SEND_HIGH_WATER_BYTES = 16 * 64 * 1024;

/** Length of our ping payload: a sequence number, so a pong is matched to the ping it answers. */
export const WS_PING_ID_BYTES = 8;
