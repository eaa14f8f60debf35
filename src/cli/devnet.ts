// `findings devnet N`: N nodes on loopback hosts that mesh with each other, in this one process, for app developers (DESIGN §1).
//
// Node 1 runs as --public, every other node is given node 1's address only, so the devnet goes
// through the same self-check, online help and peer sharing as a real network. Nodes live on
// <prefix>.1 … <prefix>.N (default 127.0.77.x), all on one port, admin on the port + 1, homes under
// <home>/devnet/n<i> (their keys, and so their ids, are kept between runs).
import { defineCommand } from "citty";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { DEFAULTS } from "../config/index.ts";
import { loadConfig, type Overrides } from "../config/index.ts";
import { createNode, type FindingsNode } from "../node.ts";
import { createLogger, installProcessGuards } from "../ops/index.ts";
import { action, commonArgs, jsonArg, loadContext } from "./common.ts";

/** More nodes than this in one process is a benchmark, not a devnet (use real processes). */
const MAX_DEVNET_NODES = 64;
/** How long `devnet` waits for every node to fill its outgoing links before it says so. */
const MESH_WAIT_MS = 60_000;

export const devnetCommand = defineCommand({
  meta: { name: "devnet", description: "Start N nodes on loopback that mesh with each other (for app developers)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    nodes: { type: "positional", description: `How many nodes, 2..${MAX_DEVNET_NODES} (default 5)`, required: false },
    prefix: { type: "string", description: "First three octets of the loopback hosts (default 127.0.77)", valueHint: "A.B.C" },
    port: { type: "string", description: `UDP and TCP port of every node (default ${DEFAULTS.server_uport}; admin on port + 1)`, valueHint: "N" },
    kind: { type: "string", description: "An app kind every node serves, e.g. app:demo (so `findings find` has answers)", valueHint: "KIND" },
  },
  run: action(async ({ args }) => {
    const n = args.nodes === undefined ? 5 : Number(args.nodes);
    if (!Number.isInteger(n) || n < 2 || n > MAX_DEVNET_NODES) throw new Error(`Invalid node count ${JSON.stringify(args.nodes)}: allowed 2..${MAX_DEVNET_NODES}`);
    const prefix = args.prefix ?? "127.0.77";
    if (!/^127\.\d{1,3}\.\d{1,3}$/.test(prefix) || prefix.split(".").some((x) => Number(x) > 255)) throw new Error(`Invalid flag --prefix: ${JSON.stringify(prefix)} is not allowed (allowed: "127.B.C", a loopback prefix)`);
    const port = args.port === undefined ? DEFAULTS.server_uport : Number(args.port);
    if (!Number.isInteger(port) || port < 1 || port > 65534) throw new Error(`Invalid flag --port: ${JSON.stringify(args.port)} is not allowed (allowed: 1..65534)`);
    const ctx = loadContext(args);
    const base = ctx.config;
    const root = join(ctx.home, "devnet");
    const log = createLogger({ root: join(root, "logs"), level: base.log_level, terminalLevel: "warn" });
    installProcessGuards(log);

    const nodes: FindingsNode[] = [];
    const host = (i: number) => `${prefix}.${i + 1}`;
    const stop = async () => {
      await Promise.all(nodes.map((x) => x.stop().catch(() => {})));
      await log.close();
    };
    try {
      for (let i = 0; i < n; i++) {
        const home = join(root, `n${i + 1}`);
        mkdirSync(home, { recursive: true, mode: 0o700 });
        const flags: Overrides = {
          host: host(i),
          server_uport: port,
          server_tport: port,
          admin: `${host(i)}:${port + 1}`,
          public: i === 0,
          client_only: false,
          peers: i === 0 ? [] : [`${host(0)}:${port}`],
          // Each pair holds at most one link: n nodes can each keep (n - 1) / 2 outgoing ones.
          mesh_out: Math.max(1, Math.min(base.mesh_out, Math.floor((n - 1) / 2))),
          // Every TCP dial on loopback leaves from 127.0.0.1: one source IP for the whole devnet.
          max_links_per_ip: Math.max(base.max_links_per_ip, 8 * n),
          // All on one loopback /24 (loopback targets allowed below): the diversity limits do not apply.
          mesh_per_prefix: 64,
          candidates_per_prefix: Math.max(base.candidates_per_prefix, base.shortlist),
          user_id: `devnet-${i + 1}`,
          // Loopback is a special-purpose range: a devnet's apps live there, all in one /24.
          allow_special_targets: true,
          punch_per_prefix: base.punch_xpool,
          ...(args.kind ? { stakes: { [args.kind]: "" } } : {}),
        };
        const { config } = loadConfig({ home, configFile: ctx.file, env: process.env, flags });
        const node = await createNode({ config, home, log: log.child({ node: i + 1 }) });
        nodes.push(node);
        await node.start();
      }
    } catch (err) {
      await stop();
      throw err;
    }
    const list = nodes.map((x, i) => ({ name: `n${i + 1}`, id: x.key.nodeId, publicKey: x.key.publicKeyHex, address: `${host(i)}:${port}`, admin: x.adminUrl ?? null }));
    if (args.json) process.stdout.write(JSON.stringify({ event: "ready", nodes: list }) + "\n");
    else {
      process.stdout.write(`devnet of ${n} nodes (homes in ${root}); stop with Ctrl-C\n`);
      for (const x of list) process.stdout.write(`  ${x.name.padEnd(4)} ${x.address.padEnd(22)} ${x.id.slice(0, 16)}  ${x.admin ?? ""}\n`);
      process.stdout.write(`try: findings peers --server ${list[0]!.address}${args.kind ? `   findings find ${args.kind} --server ${list[n - 1]!.address}` : ""}\n`);
    }

    let stopping = false;
    const shutdown = async () => {
      if (stopping) process.exit(1);
      stopping = true;
      await stop();
      process.exit(0);
    };
    process.on("SIGINT", () => void shutdown());
    process.on("SIGTERM", () => void shutdown());

    const t0 = Date.now();
    while (Date.now() - t0 < MESH_WAIT_MS && !stopping) {
      const full = nodes.every((x) => {
        const s = x.meshService.status();
        return s.serving && s.mesh.out + s.mesh.in >= s.mesh.maxOut;
      });
      if (full) {
        const ms = Date.now() - t0;
        if (args.json) process.stdout.write(JSON.stringify({ event: "meshed", ms }) + "\n");
        else process.stdout.write(`meshed in ${(ms / 1000).toFixed(1)} s\n`);
        break;
      }
      await Bun.sleep(250);
    }
    await new Promise(() => {});
  }),
});
