// `findings serve`: run a node until SIGINT/SIGTERM (DESIGN §9 flags).
import { defineCommand } from "citty";
import { join } from "node:path";
import { DEFAULTS } from "../config/index.ts";
import type { Overrides } from "../config/index.ts";
import { createNode } from "../node.ts";
import { createLogger, installProcessGuards } from "../ops/index.ts";
import { action, commonArgs, jsonArg, loadContext, repeated } from "./common.ts";

export const serveCommand = defineCommand({
  meta: { name: "serve", description: "Run a Findings node (public service node, or client-only behind NAT)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    host: { type: "string", description: `Address to bind and advertise (default ${DEFAULTS.host})`, valueHint: "IP" },
    port: { type: "string", description: `UDP and TCP port (default ${DEFAULTS.server_uport})`, valueHint: "N" },
    "udp-port": { type: "string", description: "UDP port: QUIC, probes, STUN Binding", valueHint: "N" },
    "tcp-port": { type: "string", description: "TCP port: TLS mesh and /whoami", valueHint: "N" },
    admin: { type: "string", description: `Admin HTTP address on loopback, "" = off (default ${DEFAULTS.admin})`, valueHint: "ADDR" },
    peer: { type: "string", description: "Bootstrap peer ip:port[#key] (repeatable)", valueHint: "ADDR" },
    public: { type: "boolean", description: "Declare this node publicly reachable without the self-check (first node of a network)" },
    "client-only": { type: "boolean", description: "Never serve; use the network as a client" },
  },
  run: action(async ({ args, rawArgs }) => {
    const flags: Overrides = {};
    const port = (name: string, v: string | undefined) => {
      if (v === undefined) return undefined;
      if (!/^\d+$/.test(v)) throw new Error(`Invalid flag --${name}: ${JSON.stringify(v)} is not allowed (allowed: an integer from 0 to 65535)`);
      return Number(v);
    };
    if (args.host !== undefined) flags.host = args.host;
    const both = port("port", args.port);
    flags.server_uport = port("udp-port", args["udp-port"]) ?? both;
    flags.server_tport = port("tcp-port", args["tcp-port"]) ?? both;
    if (args.admin !== undefined) flags.admin = args.admin;
    const peers = repeated(rawArgs, "peer");
    if (peers.length) flags.peers = peers;
    if (args.public) flags.public = true;
    if (args["client-only"]) flags.client_only = true;
    const ctx = loadContext(args, flags);
    const { config } = ctx;

    const log = createLogger({
      root: config.log_root || join(ctx.home, "logs"),
      level: config.log_level,
      terminalLevel: config.log_level,
    });
    const node = await createNode({ config, home: ctx.home, log });
    // A stray error from a peer's input is logged and counted; the node keeps serving.
    installProcessGuards(log, node.metrics);
    // Clean shutdown: links closed, log flushed, exit 0. A second signal forces the exit.
    let stopping = false;
    const shutdown = async (signal: string) => {
      if (stopping) process.exit(1);
      stopping = true;
      log.info("shutting down", { signal });
      await node.stop().catch((err) => log.error("stop failed", { err }));
      await log.close();
      process.exit(0);
    };
    process.on("SIGINT", () => void shutdown("SIGINT"));
    process.on("SIGTERM", () => void shutdown("SIGTERM"));
    try {
      await node.start();
    } catch (err) {
      await node.stop().catch(() => {});
      await log.close();
      throw err;
    }
    if (args.json) {
      process.stdout.write(
        JSON.stringify({
          event: "ready",
          id: node.key.nodeId,
          publicKey: node.key.publicKeyHex,
          udpPort: node.udp.port,
          tcpPort: node.tls.port,
          admin: node.adminUrl ?? null,
          spki: node.cert.spki,
        }) + "\n",
      );
    }

    await new Promise(() => {});
  }),
});
