// `findings share register|fetch`: list my public TCP server for an app kind on a node (it dials the server back
// first), or fetch a few listed servers of a kind (DESIGN §5 share pool; seed 001 §分享池). Protocol in
// src/share/service.ts. `fetch --search` lets the node search the mesh for servers other nodes list.
import { defineCommand } from "citty";
import { FindingsClient } from "../client/index.ts";
import { SHARE_FETCH_MAX } from "../punch/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";
import { MAX_SEARCH_HOPS } from "../mesh/index.ts";
import { describeNode, nodeJson, noteLearnedKey } from "./node-info.ts";

const serverArgs = {
  server: { type: "string", required: true, description: "Findings node ip:port (its key known or learned on first use), or ip:port#<node key hex>", valueHint: "ADDR" },
  wss: { type: "boolean", description: "Over WSS to the node's TLS port (ADDR's port), for hosts without UDP" },
  kind: { type: "string", required: true, description: 'App kind, e.g. "app:web"', valueHint: "KIND" },
  timeout: { type: "string", description: "Seconds to wait (default 10, with --search 20)", valueHint: "S" },
} as const;

/** The client library for this command (the app's identity from --home) and the command's deadline. */
function clientFor(args: { server: string; timeout?: string; home?: string; config?: string; wss?: boolean; search?: boolean }): { client: FindingsClient; signal: AbortSignal } {
  const seconds = args.timeout === undefined ? (args.search ? 20 : 10) : Number(args.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
  return { client: new FindingsClient({ server: args.server, home: loadContext(args).home, transport: args.wss ? "wss" : "quic" }), signal: AbortSignal.timeout(seconds * 1000) };
}

const registerCommand = defineCommand({
  meta: { name: "register", description: "List my public TCP server (this host's address as the node sees it, --port) for a kind" },
  args: { ...commonArgs, ...jsonArg, ...serverArgs, port: { type: "string", required: true, description: "TCP port of my server", valueHint: "N" } },
  run: action(async ({ args }) => {
    const port = Number(args.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`Invalid flag --port: ${JSON.stringify(args.port)} is not allowed (allowed: 1..65535)`);
    const { client, signal } = clientFor(args);
    const address = await client.share.register(args.kind, port, { signal });
    const node = client.node!;
    noteLearnedKey(client, node);
    const out = { listed: true, kind: args.kind, address, keySource: node.keySource, node: nodeJson(node) };
    if (args.json) printJson(out);
    else process.stdout.write(`listed ${out.address} for ${args.kind}\n${describeNode(node)}\n`);
  }),
});

const fetchCommand = defineCommand({
  meta: { name: "fetch", description: `Fetch up to ${SHARE_FETCH_MAX} listed TCP servers of a kind` },
  args: {
    ...commonArgs,
    ...jsonArg,
    ...serverArgs,
    max: { type: "string", description: `At most this many (1..${SHARE_FETCH_MAX})`, valueHint: "N" },
    search: { type: "boolean", description: "Also search the mesh: servers listed by other nodes (signed by the node that lists them, dialled by the node asked)" },
    hops: { type: "string", description: `With --search: mesh hops, 0-${MAX_SEARCH_HOPS} (default ${MAX_SEARCH_HOPS})`, valueHint: "N" },
  },
  run: action(async ({ args }) => {
    const max = args.max === undefined ? SHARE_FETCH_MAX : Number(args.max);
    if (!Number.isInteger(max) || max < 1 || max > SHARE_FETCH_MAX) throw new Error(`Invalid flag --max: ${JSON.stringify(args.max)} is not allowed (allowed: 1..${SHARE_FETCH_MAX})`);
    const hops = args.hops === undefined ? MAX_SEARCH_HOPS : Number(args.hops);
    if (!Number.isInteger(hops) || hops < 0 || hops > MAX_SEARCH_HOPS) throw new Error(`Invalid flag --hops: ${JSON.stringify(args.hops)} is not allowed (allowed: an integer from 0 to ${MAX_SEARCH_HOPS})`);
    const { client, signal } = clientFor(args);
    const list = await client.share.fetch(args.kind, { max, signal, search: !!args.search, hops });
    const node = client.node!;
    noteLearnedKey(client, node);
    const servers = list.map((e) => ({ address: e.address, verifiedAt: e.verifiedAt.toISOString(), nodeId: e.nodeId }));
    if (args.json) printJson({ kind: args.kind, servers, keySource: node.keySource, node: nodeJson(node) });
    else {
      const lines = servers.map((s) => `${s.address}  verified ${s.verifiedAt}${s.nodeId !== node.nodeId ? `  via ${s.nodeId.slice(0, 16)}…` : ""}`);
      process.stdout.write((lines.length ? lines.join("\n") : `no listed servers for ${args.kind}`) + `\n${describeNode(node)}\n`);
    }
  }),
});

export const shareCommand = defineCommand({
  meta: { name: "share", description: "TCP server registry of a node: register my server, or fetch listed ones" },
  subCommands: { register: registerCommand, fetch: fetchCommand },
});
