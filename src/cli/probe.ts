// `findings probe`: my public address, NAT class and (with --lifetime) mapping lifetime (DESIGN §1, §6).
import { defineCommand } from "citty";
import { DEFAULTS } from "../config/defaults.ts";
import { ConfigError } from "../errors.ts";
import { runProbe, type ProbeServer } from "../nat/probe-client.ts";
import { summarizeProbe } from "../nat/probe-report.ts";
import { parseAddress } from "../contracts/address.ts";
import { action, commonArgs, jsonArg, loadContext, printJson, repeated } from "./common.ts";

export const probeCommand = defineCommand({
  meta: { name: "probe", description: "Learn my public address, NAT class and (with --lifetime) NAT mapping lifetime" },
  args: {
    ...commonArgs,
    ...jsonArg,
    server: { type: "string", description: "Server ip:port[#key] (repeatable; with fewer than 3 the servers are asked for more; default: the config's peers)", valueHint: "ADDR" },
    lifetime: { type: "boolean", description: "Also measure how long the NAT keeps an idle mapping (takes about that long, up to 300 s)" },
    timeout: { type: "string", description: `Seconds to wait for answers that may never come (default: config probe_timeout_s, ${DEFAULTS.probe_timeout_s})`, valueHint: "S" },
  },
  run: action(async ({ args, rawArgs }) => {
    const { config } = loadContext(args);
    const texts = repeated(rawArgs, "server");
    const list = texts.length > 0 ? texts : config.peers;
    if (list.length === 0) throw new ConfigError("--server", "at least one server is needed (ip:port), or peers in the config");
    const servers: ProbeServer[] = list.map((t) => parseAddress(t, "--server"));
    let timeoutMs = config.probe_timeout_s * 1000;
    if (args.timeout !== undefined) {
      timeoutMs = Number(args.timeout) * 1000;
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
    }

    // Ctrl-C ends the run early with what it has (a second one exits).
    const stop = new AbortController();
    const onSigint = () => (stop.signal.aborted ? process.exit(130) : stop.abort(new Error("interrupted")));
    process.on("SIGINT", onSigint);
    const progress = args.json
      ? undefined
      : (p: { elapsedMs: number; phase: string; message: string }) => process.stderr.write(`${(p.elapsedMs / 1000).toFixed(2).padStart(6)}s  ${p.phase.padEnd(9)} ${p.message}\n`);
    const report = await runProbe({ servers, lifetime: args.lifetime === true, timeoutMs, signal: stop.signal, onProgress: progress });
    process.off("SIGINT", onSigint);

    if (args.json) printJson(report);
    else process.stdout.write(summarizeProbe(report) + "\n");
    if (report.nat === null) {
      const decision = report.evidence.find((e) => e.test === "decision");
      process.stderr.write(`findings: Cannot tell the NAT class: ${String(decision?.reason ?? "no server answered")}\n`);
      process.exit(1);
    }
    // Exit at once: QUIC links were closed politely inside runProbe, nothing else is pending.
    process.exit(0);
  }),
});
