// Flags every command shares (--home, --config, --json, --log-level) and the context built from them.
import type { ArgsDef } from "citty";
import { loadConfig, type Overrides, type LoadedConfig } from "../config/index.ts";
import type { LogLevel } from "../config/index.ts";
import { errorLine } from "../errors.ts";
import { defaultHome, ensureHome } from "../ops/index.ts";

export const commonArgs = {
  home: { type: "string", description: "Home folder (default ~/.findings, or $FINDINGS_HOME)", valueHint: "DIR" },
  config: { type: "string", description: "Config file (default <home>/config.toml)", valueHint: "FILE" },
  "log-level": { type: "string", description: "debug | info | warn | error", valueHint: "LEVEL" },
} as const satisfies ArgsDef;

export const jsonArg = { json: { type: "boolean", description: "Print the result as JSON" } } as const satisfies ArgsDef;

export interface CommandContext extends LoadedConfig {
  home: string;
}

/** Resolves home and the effective configuration; `flags` are this command's overrides. */
export function loadContext(args: { home?: string; config?: string; "log-level"?: string }, flags: Overrides = {}): CommandContext {
  const home = ensureHome(args.home ?? defaultHome());
  const configFile = args.config ?? process.env.FINDINGS_CONFIG ?? undefined;
  const all: Overrides = { ...flags };
  if (args["log-level"] !== undefined) all.log_level = args["log-level"] as LogLevel;
  return { home, ...loadConfig({ home, configFile, env: process.env, flags: all }) };
}

/** All values of a repeatable flag (citty keeps only one), e.g. --peer a --peer b. */
export function repeated(rawArgs: string[], name: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === `--${name}` && i + 1 < rawArgs.length) out.push(rawArgs[++i]!);
    else if (a.startsWith(`--${name}=`)) out.push(a.slice(name.length + 3));
  }
  return out;
}

/** Runs a command body: on failure one clear line on stderr and exit code 1 (DESIGN §1). */
export function action<T>(fn: (ctx: T) => Promise<void> | void): (ctx: T) => Promise<void> {
  return async (ctx) => {
    try {
      await fn(ctx);
    } catch (err) {
      activeLine?.stop();
      process.stderr.write(`findings: ${errorLine(err)}\n`);
      process.exit(1);
    }
  };
}

/** One JSON object on one line. Every `--json` output is made of such lines: commands that answer once print
 *  exactly one, commands that stream events print one per event (NDJSON). */
export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)) + "\n");
}

/** Environment switch for the progress line: "1" shows it even without a terminal (tests, `script`-less CI
 *  logs), "0" never shows it. Unset: shown when both stdout and stderr are terminals. */
export const PROGRESS_ENV = "FINDINGS_PROGRESS";

/** Whether a long command draws its progress line: never with --json (stdout stays machine-readable and
 *  stderr quiet), else per FINDINGS_PROGRESS, else only on a terminal. */
export function progressWanted(json: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  if (json) return false;
  if (env[PROGRESS_ENV] === "1") return true;
  if (env[PROGRESS_ENV] === "0") return false;
  return process.stdout.isTTY === true && process.stderr.isTTY === true;
}

export interface ProgressLine {
  /** Redraws the line now (it also redraws itself every half second, so elapsed time moves). */
  refresh(): void;
  /** Runs `write` (stdout output) with the line cleared, then draws it again below. */
  above(write: () => void): void;
  /** Clears the line for good. */
  stop(): void;
}

/** A single updating stderr line with the text of `render`; a no-op when `enabled` is false. */
/** The line being drawn, cleared before an error line. */
let activeLine: ProgressLine | null = null;

export function progressLine(enabled: boolean, render: () => string): ProgressLine {
  if (!enabled) return { refresh() {}, above: (write) => write(), stop() {} };
  const CLEAR = "\r\x1b[2K";
  let shown = false;
  const draw = () => {
    const width = Math.max(20, (process.stderr.columns || 100) - 1);
    const text = render().replace(/\s+/g, " ");
    process.stderr.write(CLEAR + (text.length > width ? text.slice(0, width - 1) + "…" : text));
    shown = true;
  };
  const timer = setInterval(draw, 500);
  timer.unref();
  draw();
  return (activeLine = {
    refresh: draw,
    above(write) {
      if (shown) process.stderr.write(CLEAR);
      write();
      draw();
    },
    stop() {
      clearInterval(timer);
      if (shown) process.stderr.write(CLEAR);
      shown = false;
    },
  });
}

/** "42 s", "3 min 05 s": elapsed and expected times on progress lines. */
export function formatSeconds(ms: number): string {
  const s = Math.max(0, Math.round(ms / 1000));
  return s < 60 ? `${s} s` : `${Math.floor(s / 60)} min ${String(s % 60).padStart(2, "0")} s`;
}
