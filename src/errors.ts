// Named error classes of Findings, each with a stable code (table in README "Error codes").
// Errors caused by network input are values for the handler to count and log, never crashes.

export type ErrorCode =
  | "DECODE"
  | "LIMIT"
  | "CONFIG"
  | "PEER"
  | "IDENTITY"
  | "SEAL"
  | "TIMEOUT";

export class FindingsError extends Error {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
    this.name = "FindingsError";
  }
}

/** Bytes that cannot be parsed; `place` names where the parse stopped. */
export class DecodeError extends FindingsError {
  readonly place: string;
  constructor(place: string, message: string, options?: { cause?: unknown }) {
    super("DECODE", `Cannot decode ${place}: ${message}`, options);
    this.name = "DecodeError";
    this.place = place;
  }
}

/** A declared or actual size over a named limit. */
export class LimitError extends FindingsError {
  constructor(what: string, size: number, limit: number) {
    super("LIMIT", `Cannot accept ${what} of ${size} bytes: limit is ${limit}`);
    this.name = "LimitError";
  }
}

/** A configuration value that is unknown or out of range; `key` is the dotted key. */
export class ConfigError extends FindingsError {
  readonly key: string;
  constructor(key: string, message: string) {
    super("CONFIG", `Invalid config ${key}: ${message}`);
    this.name = "ConfigError";
    this.key = key;
  }
}

/** A peer that broke the protocol (wrong key, wrong answer, refused bootstrap). */
export class PeerError extends FindingsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("PEER", message, options);
    this.name = "PeerError";
  }
}

/** A peer's certificate does not match the pin we dialled with (a man in the middle, or a node that restarted
 *  with a new certificate). Raised by QUIC and WSS dials alike. */
export class PinMismatchError extends PeerError {
  readonly expectedSpki: string;
  readonly actualSpki: string;
  constructor(message: string, expected: string, actual: string) {
    super(message);
    this.name = "PinMismatchError";
    this.expectedSpki = expected;
    this.actualSpki = actual;
  }
}

/** The node key file is missing, unsafe or corrupt. */
export class IdentityError extends FindingsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("IDENTITY", message, options);
    this.name = "IdentityError";
  }
}

/** A sealed box that does not open: wrong key, tampered bytes, wrong purpose. */
export class SealError extends FindingsError {
  constructor(message: string, options?: { cause?: unknown }) {
    super("SEAL", message, options);
    this.name = "SealError";
  }
}

export class TimeoutError extends FindingsError {
  constructor(what: string, ms: number) {
    super("TIMEOUT", `Timed out after ${ms} ms: ${what}`);
    this.name = "TimeoutError";
  }
}

/** One line for a terminal: the message without a stack. */
export function errorLine(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
