// The surface of src/transport: what other folders may import from it.
export { bootstrapApp, type AppKey, type BootstrapDialer, type BootstrapLink, type NodeGreeting } from "./app-bootstrap/bootstrap.ts";
export { type AppGreeting } from "./app-bootstrap/handlers.ts";
export { wssAppDialer } from "./app-bootstrap/wss.ts";
export { serveAppBootstrapOverWss } from "./app-bootstrap/wss.ts";
export { QUIC_HANDSHAKE_TIMEOUT_MS } from "./quic/constants.ts";
export { type QuicLink, expectOk } from "./quic/link.ts";
export { raceSignal } from "./quic/stream-io.ts";
export { MAX_RAW_PROTOCOL_BYTES, type RawStream, type RawStreamHandler, isValidRawProtocol } from "./quic/raw-stream.ts";
export { quicWhoami } from "./quic/whoami.ts";
export { type TlsEndpoint, type WsUpgradeInfo, createTlsEndpoint } from "./tls/endpoint.ts";
export { httpsGetJson, httpsWhoami } from "./tls/https-whoami-client.ts";
export { type HttpHandler, type HttpRouteTable, jsonAnswer } from "./tls/https-routes.ts";
export { type UdpClient, createUdpClient } from "./udp/client.ts";
export {
  type DialOptions,
  type LinkEvent,
  type LinkListener,
  type UdpEndpoint,
  createUdpEndpoint,
} from "./udp/endpoint.ts";
export { type RawDatagramInfo } from "./udp/shared-socket.ts";
export { PinMismatchError, dialWss } from "./ws/client.ts";
export { type WsCloseInfo, type WsConnection } from "./ws/connection.ts";
export { WS_CLOSE } from "./ws/constants.ts";
