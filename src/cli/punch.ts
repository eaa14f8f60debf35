// `findings punch`: debug hole punching through a Findings node (DESIGN §7). `--wait` joins the kind's app pool,
// prints this app's node id and prints one result per peer that reaches it; `<id>` punches that node (directed);
// neither punches random compatible members (random punch). Built on the client library (src/client); the
// protocol is in src/punch/punch-client.ts.
//
// NAT class: `--nat CLASS` when given; else `findings probe` as a library (src/nat/probe-client.ts) against the
// server (about the probe timeout, 6 s); when it fails or gives no class, "unknown" (then only Public/FullC peers
// can be punched). With a single server the probe may come out stricter than the truth (NewHost needs other
// nodes of the mesh): pass --nat when you know the class.
import { defineCommand } from "citty";
import { isIP } from "node:net";
import { PeerError, TimeoutError, errorLine } from "../errors.ts";
import { createLogger } from "../ops/index.ts";
import { isPunchRefused, type AddressChange, type JoinInfo } from "../punch/index.ts";
import { FindingsClient, type Membership } from "../client/index.ts";
import { describeNode, nodeJson, noteLearnedKey } from "./node-info.ts";
import { describeResult, failedResult, type PunchResult } from "../punch/index.ts";
import { isNatClassName, NAT_CLASSES, type NatClassName } from "../nat/index.ts";
import { runProbe } from "../nat/index.ts";
import { parseAddress, type PeerAddress } from "../contracts/index.ts";
import { Status } from "../wire/index.ts";
import { parseHostPort, runExpose, runForward } from "./pipe.ts";
import { action, commonArgs, formatSeconds, jsonArg, loadContext, printJson, progressLine, progressWanted } from "./common.ts";
import type { Logger } from "../contracts/index.ts";

/** Whole-command budget for a one-shot punch, in seconds: bootstrap, request, and a spray attempt (15 s). */
const DEFAULT_PUNCH_TIMEOUT_S = 20;

/** --nat value: a JSON name ("port-restricted-cone") or a label ("P-RC"), any case. */
export function parseNatFlag(text: string): NatClassName {
  const t = text.trim().toLowerCase();
  if (isNatClassName(t)) return t;
  const byLabel = NAT_CLASSES.find((c) => c.label.toLowerCase() === t);
  if (byLabel) return byLabel.nat;
  throw new Error(`Invalid flag --nat: ${JSON.stringify(text)} is not allowed (allowed: ${NAT_CLASSES.map((c) => c.nat).join(", ")}, or a label like P-RC)`);
}

/** Our NAT class: the flag, else a probe against the server (`findings probe` as a library), else unknown. */
async function resolveNat(flag: string | undefined, server: PeerAddress, signal: AbortSignal): Promise<{ nat: NatClassName | null; source: "flag" | "probe" | "unknown"; note?: string }> {
  if (flag !== undefined) return { nat: parseNatFlag(flag), source: "flag" };
  try {
    const report = await runProbe({ servers: [{ ip: server.ip, port: server.port, publicKey: server.publicKey }], signal });
    return report.nat ? { nat: report.nat, source: "probe" } : { nat: null, source: "unknown", note: "the probe found no class" };
  } catch (err) {
    return { nat: null, source: "unknown", note: `the probe failed: ${errorLine(err)}` };
  }
}

/** @matrixai/quic throws from an event listener when a send on the shared socket fails with a code it does not
 *  expect — ECONNREFUSED/EHOSTUNREACH reported for an EARLIER datagram whose ICMP error came back (our openers
 *  to a NAT port without a mapping, or to a peer that went away). That one packet is lost and QUIC resends it;
 *  the link lives on. Anything else uncaught is a bug: one line and exit 1. */
export function isStraySendError(err: unknown): boolean {
  const e = err as { name?: string; message?: string; cause?: { code?: string } } | null;
  return !!e && /Failed to send data on the QUICSocket/.test(e.message ?? "") && ["ECONNREFUSED", "EHOSTUNREACH", "ENETUNREACH"].includes(e.cause?.code ?? "");
}

export const punchCommand = defineCommand({
  meta: { name: "punch", description: "Debug hole punching: --wait to be punched, or punch the node ID (random peers without ID)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    id: { type: "positional", required: false, description: "Node id (hex) of the app to punch; omit for a random punch", valueHint: "ID" },
    server: { type: "string", required: true, description: "Findings node ip:port (its key known or learned on first use), or ip:port#<node key hex> to pin it by hand", valueHint: "ADDR" },
    kind: { type: "string", required: true, description: 'App kind whose pool to join, e.g. "app:chat"', valueHint: "KIND" },
    wait: { type: "boolean", description: "Join and wait to be punched; print one result per peer" },
    once: { type: "boolean", description: "With --wait: exit after the first peer connected" },
    keep: { type: "boolean", description: "After punching, stay: keep the link and punch again when the node re-offers (signalling coordination)" },
    nat: { type: "string", description: "My NAT class (public, full-cone, restricted-cone, port-restricted-cone, symmetric, …); default: probe", valueHint: "CLASS" },
    host: { type: "string", description: "Local address to bind (default 0.0.0.0, or :: for an IPv6 server)", valueHint: "IP" },
    port: { type: "string", description: "Local UDP port (default: any)", valueHint: "N" },
    max: { type: "string", description: "Random punch: most peers (default: the node's peers_punch)", valueHint: "N" },
    "target-kind": { type: "string", description: "Directed punch into another kind's pool", valueHint: "KIND" },
    timeout: { type: "string", description: `Seconds for a one-shot punch (default ${DEFAULT_PUNCH_TIMEOUT_S})`, valueHint: "S" },
    expose: { type: "string", description: "With --wait: offer this local TCP address (only it) to peers that punch in", valueHint: "HOST:PORT" },
    forward: { type: "string", description: "With ID: listen here (default host 127.0.0.1) and carry each TCP connection to the peer's exposed address", valueHint: "[HOST:]PORT" },
  },
  run: action(async ({ args }) => {
    const t0 = performance.now();
    const elapsed = () => Math.round(performance.now() - t0);
    const server = parseAddress(args.server, "--server");
    const timeoutS = args.timeout === undefined ? DEFAULT_PUNCH_TIMEOUT_S : Number(args.timeout);
    if (!Number.isFinite(timeoutS) || timeoutS <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
    const port = args.port === undefined ? 0 : Number(args.port);
    if (!Number.isInteger(port) || port < 0 || port > 65535) throw new Error(`Invalid flag --port: ${JSON.stringify(args.port)} is not allowed (allowed: an integer from 0 to 65535)`);
    if (args.host !== undefined && isIP(args.host) === 0) throw new Error(`Invalid flag --host: ${JSON.stringify(args.host)} is not an IP address`);
    const max = args.max === undefined ? 0 : Number(args.max);
    if (!Number.isInteger(max) || max < 0 || max > 100) throw new Error(`Invalid flag --max: ${JSON.stringify(args.max)} is not allowed (allowed: 1..100)`);
    const target = args.id as string | undefined;
    if (target !== undefined && !/^[0-9a-fA-F]{64}$/.test(target)) throw new Error(`Invalid argument ID: ${JSON.stringify(target)} is not a node id (allowed: 64 hex digits)`);
    if (args.wait && target !== undefined) throw new Error("Invalid flags: --wait and an ID exclude each other (one side waits, the other punches)");
    if (args.expose !== undefined && !args.wait) throw new Error("Invalid flag --expose: it needs --wait (the exposing side waits to be punched)");
    if (args.forward !== undefined && target === undefined) throw new Error("Invalid flag --forward: it needs the ID of the exposing app");
    const exposeTo = args.expose === undefined ? undefined : parseHostPort(args.expose, "--expose");
    const forwardAt = args.forward === undefined ? undefined : parseHostPort(args.forward, "--forward", "127.0.0.1");

    const ctx = loadContext(args);
    const logger = args["log-level"] ? createLogger({ level: ctx.config.log_level, terminalLevel: ctx.config.log_level }) : undefined;
    const log: Logger | undefined = logger;

    // On a terminal: one updating stderr line saying what is going on, elapsed and (one-shot) the budget.
    // Not with --log-level: log lines on stderr would tear the line apart.
    let stage = args.nat === undefined ? "probing my NAT class" : "starting";
    /** Waiting for offers with no end (--wait, --keep): no budget to show. */
    let openEnded = false;
    let connected = 0;
    let failed = 0;
    const line = progressLine(progressWanted(args.json) && !logger, () => {
      const time = openEnded ? formatSeconds(elapsed()) : `${formatSeconds(elapsed())} of up to ${formatSeconds(timeoutS * 1000)}`;
      const tally = connected + failed > 0 ? ` · ${connected} connected, ${failed} failed` : "";
      return `punch ${time} · ${stage}${tally}`;
    });
    /** Stdout output: one compact JSON object per line with --json, else a readable line. */
    const print = (r: PunchResult) => line.above(() => process.stdout.write(args.json ? JSON.stringify(r) + "\n" : describeResult(r) + "\n"));
    const fail = (reason: string) => {
      line.stop();
      process.stderr.write(`findings: ${reason}\n`);
    };

    const deadline = AbortSignal.timeout(timeoutS * 1000);
    const nat = await resolveNat(args.nat, server, deadline);

    if (exposeTo || forwardAt) {
      // The pipe modes: the client library does the rest (src/cli/pipe.ts).
      const stops: Array<() => Promise<void>> = [];
      const stopAll = async () => {
        for (const s of stops.reverse()) await s().catch(() => {});
        await logger?.close();
        process.exit(0);
      };
      process.on("SIGINT", () => void stopAll());
      process.on("SIGTERM", () => void stopAll());
      process.on("uncaughtException", (err) => {
        if (isStraySendError(err)) return;
        process.stderr.write(`findings: ${errorLine(err)}\n`);
        process.exit(1);
      });
      const pipeArgs = { server: args.server, kind: args.kind, home: ctx.home, json: !!args.json, nat, host: args.host, port, log, onStop: (s: () => Promise<void>) => void stops.push(s) };
      line.stop();
      try {
        if (exposeTo) await runExpose(pipeArgs, exposeTo);
        else await runForward(pipeArgs, target!, forwardAt!, deadline);
      } catch (err) {
        for (const s of stops.reverse()) await s().catch(() => {});
        throw err;
      }
      return;
    }

    const findings = new FindingsClient({ server: args.server, home: ctx.home, nat: nat.nat, host: args.host, log });
    let stopping = false;
    const shutdown = async (code: number) => {
      if (stopping) return;
      stopping = true;
      line.stop();
      await findings.close().catch(() => {});
      await logger?.close();
      process.exit(code);
    };
    process.on("uncaughtException", (err) => {
      if (isStraySendError(err)) {
        log?.debug("a QUIC packet was lost to an earlier ICMP error on the socket", { error: errorLine(err) });
        return;
      }
      fail(errorLine(err));
      process.exit(1);
    });
    process.on("SIGINT", () => void shutdown(0));
    process.on("SIGTERM", () => void shutdown(0));

    // Results of offers the node pushes: the --wait side's peers, and re-offers (--keep).
    let streaming = false;
    /** When each attempt finished, ms since the command started. */
    const finishedAt = new Map<string, number>();
    const onResult = (r: PunchResult) => {
      if (r.attemptId) finishedAt.set(r.attemptId, elapsed());
      if (!streaming) return;
      if (r.connected) connected++;
      else failed++;
      print(r);
      if (args.once && r.connected) void shutdown(0);
    };
    // After the node link dropped and came back (the membership bootstraps and joins again by itself).
    const onRejoin = (j: JoinInfo) => {
      if (!streaming) return;
      stage = `waiting in ${j.kind} as ${j.address} (rejoined); Ctrl-C to stop`;
      line.above(() => {
        if (args.json) printJson({ id: j.nodeId, waiting: true, rejoined: true, kind: j.kind, address: j.address });
        else process.stdout.write(`rejoined ${j.kind} as ${j.address}\n`);
      });
    };

    // Our NAT re-mapped the live link to the node; it saw QUIC validate the new path and re-offers our peers.
    const onAddress = (c: AddressChange) => {
      if (!streaming) return;
      line.above(() => {
        if (args.json) printJson({ id: m.id, addressChanged: true, address: c.address, previousAddress: c.previous });
        else process.stdout.write(`our public address changed: ${c.previous} → ${c.address} (the node re-offers our peers)\n`);
      });
    };

    stage = `joining ${args.kind} at ${args.server.split("#")[0]} (nat ${nat.nat ?? "unknown"})`;
    line.refresh();
    let joined: JoinInfo;
    let m: Membership;
    try {
      m = await findings.join(args.kind, { port, signal: deadline });
      joined = m.joined;
      m.on("result", onResult);
      m.on("rejoin", onRejoin);
      m.on("address", onAddress);
    } catch (err) {
      await findings.close();
      const reason = isPunchRefused(err)
        ? errorLine(err)
        : err instanceof TimeoutError || deadline.aborted
          ? `cannot reach the node ${args.server.split("#")[0]} over QUIC in time (UDP blocked?): ${errorLine(err)}`
          : errorLine(err);
      if (args.wait) throw new PeerError(reason);
      print(failedResult(reason, { elapsedMs: elapsed(), nat: nat.nat }));
      fail(reason);
      await logger?.close();
      process.exit(1);
    }

    // How the node's key was trusted, and what it named when we joined (its reward address, its identity).
    const nodeInfo = await findings.joinedNode(m);
    line.above(() => noteLearnedKey(findings, nodeInfo));
    const node = nodeJson(nodeInfo);

    if (args.wait) {
      const hello = {
        id: m.id,
        waiting: true,
        kind: joined.kind,
        address: joined.address,
        localPort: m.port,
        nat: nat.nat,
        natSource: nat.source,
        ...(nat.note ? { natNote: nat.note } : {}),
        stakeAddress: joined.stakeAddress,
        stakeSource: joined.stakeSource,
        identityId: joined.identityId,
        keySource: nodeInfo.keySource,
        node,
      };
      stage = `waiting in ${joined.kind} as ${joined.address} (nat ${nat.nat ?? "unknown"}); Ctrl-C to stop`;
      openEnded = true;
      line.above(() => {
        if (args.json) printJson(hello);
        else process.stdout.write(`${m.id}\nwaiting in ${joined.kind} as ${joined.address} (nat ${nat.nat ?? "unknown"}); Ctrl-C to stop\n${describeNode(nodeInfo)}\n`);
      });
      streaming = true;
      await new Promise(() => {});
    }

    // One-shot: directed (ID) or random punch.
    stage = target ? `punching ${target.slice(0, 16)} (nat ${nat.nat ?? "unknown"})` : `punching random members of ${args["target-kind"] ?? args.kind} (nat ${nat.nat ?? "unknown"})`;
    line.refresh();
    let results: PunchResult[];
    try {
      results = await m.attempt(target ?? null, { max: max || undefined, targetKind: args["target-kind"], signal: deadline });
    } catch (err) {
      const status = isPunchRefused(err) ? err.status : null;
      const r = failedResult(errorLine(err), { elapsedMs: elapsed(), nat: nat.nat, strategy: status === Status.REFUSED && /↔/.test(errorLine(err)) ? "impossible" : "none" });
      print({ ...r, keySource: nodeInfo.keySource, node } as PunchResult);
      fail(r.reason ?? "the punch failed");
      await shutdown(1);
      return;
    }
    // elapsedMs of a one-shot punch counts from the start of the command (DESIGN §7: time to an established link).
    const withTotal = results.map((r) => ({ ...r, elapsedMs: (r.attemptId && finishedAt.get(r.attemptId)) || elapsed() }));
    const best = withTotal.find((r) => r.connected) ?? withTotal[0]!;
    const out = { ...(withTotal.length > 1 ? { ...best, attempts: withTotal } : best), keySource: nodeInfo.keySource, node };
    // One object; with --keep more follow, one line each (NDJSON).
    print(out as PunchResult);
    if (!args.json) line.above(() => process.stdout.write(`${describeNode(nodeInfo)}\n`));
    if (args.keep && best.connected) {
      stage = `connected; keeping the link (re-offers are punched again); Ctrl-C to stop`;
      connected = 1;
      openEnded = true;
      line.refresh();
      streaming = true;
      await new Promise(() => {});
    }
    if (!best.connected) fail(best.reason ?? "the punch failed");
    await shutdown(best.connected ? 0 : 1);
  }),
});
