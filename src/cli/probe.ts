// `findings probe`: my public address, NAT class and (with --lifetime) mapping lifetime (DESIGN §1, §6).
import { defineCommand } from "citty";
import { DEFAULTS } from "../config/index.ts";
import { ConfigError } from "../errors.ts";
import { LIFETIME_MAX_S } from "../nat/index.ts";
import { type ProbeProgress } from "../nat/index.ts";
import { FindingsClient, knownHostsFile, type NatReport } from "../client/index.ts";
import { summarizeProbe } from "../nat/index.ts";
import { parseAddress } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import { describeNode, nodeJson, noteLearnedKey } from "./node-info.ts";
import { action, commonArgs, formatSeconds, jsonArg, loadContext, printJson, progressLine, progressWanted, repeated } from "./common.ts";

export const probeCommand = defineCommand({
  meta: { name: "probe", description: "Learn my public address, NAT class and (with --lifetime) NAT mapping lifetime" },
  args: {
    ...commonArgs,
    ...jsonArg,
    server: { type: "string", description: "Server ip:port[#key] (repeatable; the first one's key is known, given or learned on first use, and its reward address shown; with fewer than 3 the servers are asked for more; default: the config's peers)", valueHint: "ADDR" },
    lifetime: { type: "boolean", description: "Also measure how long the NAT keeps an idle mapping (takes about that long, up to 300 s)" },
    timeout: { type: "string", description: `Seconds to wait for answers that may never come (default: config probe_timeout_s, ${DEFAULTS.probe_timeout_s})`, valueHint: "S" },
  },
  run: action(async ({ args, rawArgs }) => {
    const { config, home } = loadContext(args);
    const texts = repeated(rawArgs, "server");
    const list = texts.length > 0 ? texts : config.peers;
    if (list.length === 0) throw new ConfigError("--server", "at least one server is needed (ip:port), or peers in the config");
    // A dual-stack host is probed once per address family it has servers of, at the same time; the report's
    // top-level fields are IPv4's (IPv6's when only IPv6 servers are given), `families` has each family.
    const families = { ipv4: list.filter((t) => parseAddress(t, "--server").family === 4), ipv6: list.filter((t) => parseAddress(t, "--server").family === 6) };
    const primary: keyof typeof families = families.ipv4.length > 0 ? "ipv4" : "ipv6";
    const secondary: keyof typeof families = primary === "ipv4" ? "ipv6" : "ipv4";
    let timeoutMs = config.probe_timeout_s * 1000;
    if (args.timeout !== undefined) {
      timeoutMs = Number(args.timeout) * 1000;
      if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
    }

    // Ctrl-C ends the run early with what it has (a second one exits).
    const stop = new AbortController();
    const onSigint = () => (stop.signal.aborted ? process.exit(130) : stop.abort(new Error("interrupted")));
    process.on("SIGINT", onSigint);
    // On a terminal: one updating line with the step under test, elapsed and expected time.
    const lifetime = args.lifetime === true;
    const t0 = performance.now();
    let step: ProbeProgress = { phase: "start", message: `probing with ${list.length} server(s)`, elapsedMs: 0 };
    // The class tests take about two answer timeouts (waits for answers that may never come); the lifetime
    // test then waits up to LIFETIME_MAX_S with idle mappings.
    let expectedMs = 2 * timeoutMs + (lifetime ? LIFETIME_MAX_S * 1000 : 0);
    const line = progressLine(progressWanted(args.json), () => {
      const elapsed = performance.now() - t0;
      const message = step.message.startsWith(`${step.phase}: `) ? step.message.slice(step.phase.length + 2) : step.message;
      return `probe ${formatSeconds(elapsed)} of up to ${formatSeconds(Math.max(expectedMs, elapsed))} · ${step.phase}: ${message}`;
    });
    // The first server's key (given, known or learned on first use) and its bootstrap answer (reward address,
    // identity id), on a link of its own beside the probe.
    const client = new FindingsClient({ server: families[primary][0]!, knownHosts: knownHostsFile(home) });
    const quicGiveUp = new AbortController();
    let nodeP = nodeInfoOf(client, AbortSignal.any([stop.signal, quicGiveUp.signal, AbortSignal.timeout(2 * timeoutMs)]));
    const otherP = families[secondary].length > 0 ? client.probe({ servers: families[secondary], timeoutMs, signal: stop.signal }) : Promise.resolve(null);
    const probed = await client.probe({
      servers: families[primary],
      lifetime,
      timeoutMs,
      signal: stop.signal,
      onProgress: (p) => {
        if (p.phase === "lifetime" && step.phase !== "lifetime") expectedMs = p.elapsedMs + LIFETIME_MAX_S * 1000;
        step = p;
        line.refresh();
      },
    });
    // Without UDP the node cannot answer over QUIC: ask over its WSS link instead of waiting for QUIC to
    // time out, unless the QUIC answer is already in.
    if (probed.nat === "udp-blocked") {
      const settled = await Promise.race([nodeP, Bun.sleep(0).then(() => null)]);
      if (!settled?.node) {
        quicGiveUp.abort(new Error("no UDP path"));
        const wss = new FindingsClient({ server: families[primary][0]!, knownHosts: knownHostsFile(home), transport: "wss" });
        nodeP = nodeInfoOf(wss, AbortSignal.any([stop.signal, AbortSignal.timeout(timeoutMs)]));
      }
    }
    const { node, error: nodeError } = await nodeP;
    line.stop();
    process.off("SIGINT", onSigint);
    noteLearnedKey(client, node);
    const other = await otherP;
    const perFamily = { [primary]: familyJson(probed), ...(other ? { [secondary]: familyJson(other) } : {}) };
    const report = { ...probed, families: perFamily, keySource: node?.keySource ?? null, node: node ? nodeJson(node) : null, ...(nodeError ? { nodeError } : {}) };

    if (args.json) printJson(report);
    else {
      const otherLine = other ? `${secondary === "ipv6" ? "IPv6" : "IPv4"}: ${other.label ?? "unknown"}${other.publicAddress ? ` at ${other.publicAddress}` : ""}\n` : "";
      process.stdout.write(summarizeProbe(report) + "\n" + otherLine + (node ? describeNode(node) : `node: ${nodeError}`) + "\n");
    }
    if (report.nat === null) {
      const decision = report.evidence.find((e) => e.test === "decision");
      process.stderr.write(`findings: Cannot tell the NAT class: ${String(decision?.reason ?? "no server answered")}\n`);
      process.exit(1);
    }
    // Exit at once: QUIC links were closed politely inside runProbe, nothing else is pending.
    process.exit(0);
  }),
});


/** One address family's result in `--json` `families`. */
function familyJson(r: NatReport) {
  return { nat: r.nat, label: r.label, publicAddress: r.publicAddress, localAddress: r.localAddress, mapping: r.mapping, filtering: r.filtering, portPreserved: r.portPreserved, servers: r.servers, elapsedMs: r.elapsedMs };
}

/** The node's info (key, reward address, identity), or the error that kept it. */
function nodeInfoOf(client: FindingsClient, signal: AbortSignal): Promise<{ node: Awaited<ReturnType<FindingsClient["nodeInfo"]>> | undefined; error: string | undefined }> {
  return client.nodeInfo({ signal }).then(
    (n) => ({ node: n, error: undefined }),
    (err: unknown) => ({ node: undefined, error: errorLine(err) }),
  );
}
