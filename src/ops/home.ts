// The home folder (--home, default ~/.findings): created on first use, private to its owner.
import { chmodSync, existsSync, mkdirSync, statSync } from "node:fs";
import { homedir } from "node:os";
import { resolve } from "node:path";
import { ConfigError } from "../errors.ts";

export function defaultHome(env: Record<string, string | undefined> = process.env): string {
  return env.FINDINGS_HOME || resolve(homedir(), ".findings");
}

/** Creates the folder with mode 0700 if missing; tightens a folder that others can write to. */
export function ensureHome(dir: string): string {
  const home = resolve(dir);
  if (!existsSync(home)) mkdirSync(home, { recursive: true, mode: 0o700 });
  const st = statSync(home);
  if (!st.isDirectory()) throw new ConfigError("--home", `${home} is not a folder`);
  if (st.mode & 0o077) chmodSync(home, 0o700);
  return home;
}
