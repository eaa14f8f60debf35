// The one logging surface every room takes: leveled lines with structured fields, and child loggers
// that add fields (e.g. { room: "mesh" }) to every line. The ops room writes them to files and the terminal.

export type LogLevel = "debug" | "info" | "warn" | "error";

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** A logger that adds `fields` to every line. */
  child(fields: LogFields): Logger;
}

/** Drops everything: the default for library use and tests that do not read the log. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child: () => silentLogger,
};

/** A Logger that hands each line, child fields merged in, to `write`: for tests that read the log and for
 *  the simulator. */
export function lineLogger(write: (level: LogLevel, msg: string, fields: LogFields) => void, base: LogFields = {}): Logger {
  return {
    debug: (msg, f) => write("debug", msg, { ...base, ...f }),
    info: (msg, f) => write("info", msg, { ...base, ...f }),
    warn: (msg, f) => write("warn", msg, { ...base, ...f }),
    error: (msg, f) => write("error", msg, { ...base, ...f }),
    child: (f) => lineLogger(write, { ...base, ...f }),
  };
}
