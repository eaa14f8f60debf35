// Structured logging: JSON lines into <log_root>/findings-YYYY-MM-DD.log (one file per UTC day),
// readable lines on a terminal (stderr), filtered by level.
import { createWriteStream, mkdirSync, type WriteStream } from "node:fs";
import { join } from "node:path";
import type { LogFields, Logger, LogLevel } from "../contracts/index.ts";

export type { LogFields, Logger };
export { silentLogger } from "../contracts/index.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** The logger the process creates: the rooms get it (or its children) as a plain Logger, and only its
 *  owner closes it. */
export interface RootLogger extends Logger {
  /** Flushes and closes the log file. */
  close(): Promise<void>;
}

export interface LoggerInit {
  /** Folder for JSON-lines files; undefined = no file. */
  root?: string;
  level: LogLevel;
  /** Readable lines on stderr at this level or above; undefined = none. */
  terminalLevel?: LogLevel;
  now?: () => Date;
}

interface Sink {
  write(level: LogLevel, msg: string, fields: LogFields): void;
  close(): Promise<void>;
}

function createSink(init: LoggerInit): Sink {
  const now = init.now ?? (() => new Date());
  let day = "";
  let stream: WriteStream | undefined;
  if (init.root) mkdirSync(init.root, { recursive: true, mode: 0o700 });
  const fileFor = (d: Date) => {
    const today = d.toISOString().slice(0, 10);
    if (today !== day || !stream) {
      // Rotation by date: a new file when the UTC day changes.
      stream?.end();
      day = today;
      stream = createWriteStream(join(init.root!, `findings-${today}.log`), { flags: "a", mode: 0o600 });
    }
    return stream;
  };
  return {
    write(level, msg, fields) {
      const t = now();
      if (init.root && RANK[level] >= RANK[init.level]) {
        fileFor(t).write(JSON.stringify({ t: t.toISOString(), level, msg, ...fields }, jsonSafe) + "\n");
      }
      if (init.terminalLevel && RANK[level] >= RANK[init.terminalLevel]) {
        const extra = Object.entries(fields)
          .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v, jsonSafe)}`)
          .join(" ");
        process.stderr.write(`${t.toISOString().slice(11, 23)} ${level.toUpperCase().padEnd(5)} ${msg}${extra ? " " + extra : ""}\n`);
      }
    },
    close() {
      const s = stream;
      stream = undefined;
      return s ? new Promise<void>((resolve) => s.end(resolve)) : Promise.resolve();
    },
  };
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === "bigint") return value.toString();
  if (value instanceof Uint8Array) return Buffer.from(value).toString("hex");
  if (value instanceof Error) return value.message;
  return value;
}

function bind(sink: Sink, base: LogFields): Logger {
  return {
    debug: (m, f) => sink.write("debug", m, { ...base, ...f }),
    info: (m, f) => sink.write("info", m, { ...base, ...f }),
    warn: (m, f) => sink.write("warn", m, { ...base, ...f }),
    error: (m, f) => sink.write("error", m, { ...base, ...f }),
    child: (f) => bind(sink, { ...base, ...f }),
  };
}

export function createLogger(init: LoggerInit): RootLogger {
  const sink = createSink(init);
  return { ...bind(sink, {}), close: () => sink.close() };
}
