// WebSocket wire facts (RFC 6455) and the limits of our own framing on the mesh endpoint (DESIGN §2, §4).

/** Appended to Sec-WebSocket-Key before hashing into Sec-WebSocket-Accept (RFC 6455 §1.3). */
export const WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/** Frame opcodes (RFC 6455 §5.2). */
export const WS_OPCODE = {
  continuation: 0x0,
  text: 0x1,
  binary: 0x2,
  close: 0x8,
  ping: 0x9,
  pong: 0xa,
} as const;

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

/** Control frames carry at most 125 bytes and are never fragmented (RFC 6455 §5.5). */
export const MAX_WS_CONTROL_PAYLOAD_BYTES = 125;

/** Largest HTTP head (status line plus headers) read while upgrading a client link; a 101
 *  answer is ~150 bytes, so more is a broken or hostile server. */
export const MAX_WS_HTTP_HEAD_BYTES = 8 * 1024;

/** How long we wait for the peer's close frame (and then for TCP to end) after sending ours,
 *  before destroying the socket, in ms. A live peer answers in one RTT. */
export const WS_CLOSE_TIMEOUT_MS = 1_000;

/** Bytes queued in the socket above which send() refuses and reading pauses (backpressure): 16
 *  full envelopes; a peer that leaves this much unread is slow or hostile. */
export const WS_SEND_HIGH_WATER_BYTES = 16 * 64 * 1024;

/** Length of our ping payload: a sequence number, so a pong is matched to the ping it answers. */
export const WS_PING_ID_BYTES = 8;
