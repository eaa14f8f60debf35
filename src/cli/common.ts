// Flags every command shares (--home, --config, --json, --log-level) and the context built from them.
import type { ArgsDef } from "citty";
import { loadConfig, type Overrides, type LoadedConfig } from "../config/load.ts";
import type { LogLevel } from "../config/schema.ts";
import { errorLine } from "../errors.ts";
import { defaultHome, ensureHome } from "../ops/home.ts";

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
      process.stderr.write(`findings: ${errorLine(err)}\n`);
      process.exit(1);
    }
  };
}

export function printJson(value: unknown): void {
  process.stdout.write(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v), 2) + "\n");
}
