// `findings config`: the effective configuration, or with --defaults the embedded one.
import { defineCommand } from "citty";
import { DEFAULTS_TOML, configToToml } from "../config/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";

export const configCommand = defineCommand({
  meta: { name: "config", description: "Print the effective configuration (--defaults: the embedded one)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    defaults: { type: "boolean", description: "Print the embedded default configuration instead" },
  },
  run: action(({ args }) => {
    if (args.defaults && !args.json) return void process.stdout.write(DEFAULTS_TOML);
    const ctx = loadContext(args);
    if (args.json) printJson(args.defaults ? { config: ctx.config } : { home: ctx.home, file: ctx.file ?? null, config: ctx.config, sources: ctx.sources });
    else process.stdout.write(`# home: ${ctx.home}${ctx.file ? `\n# file: ${ctx.file}` : ""}\n${configToToml(ctx.config)}`);
  }),
});
