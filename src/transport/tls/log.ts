// The logging surface of the TCP side: one function taking a level, like quic-config.ts's
// TransportLog, so the node passes the same logger to both sides. TODO(lead): move into the shared
// contracts module (STYLE "Shared contracts") and import it from there on both sides.

export type TlsLogLevel = "debug" | "info" | "warn" | "error";

export type TlsLog = (level: TlsLogLevel, message: string, fields?: Record<string, unknown>) => void;

/** The default: tests and library users need not pass a logger. */
export const SILENT_LOG: TlsLog = () => {};
