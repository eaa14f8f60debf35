// `findings share register|fetch`: list my public TCP server for an app kind on a node (it dials the server back
// first), or fetch a few listed servers of a kind (DESIGN §5 share pool; seed 001 §分享池). Protocol in
// src/share/service.ts.
import { defineCommand } from "citty";
import { FindingsClient } from "../client/index.ts";
import { SHARE_FETCH_MAX } from "../punch/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";

const serverArgs = {
  server: { type: "string", required: true, description: "Findings node ip:port#<node key hex>", valueHint: "ADDR" },
  kind: { type: "string", required: true, description: 'App kind, e.g. "app:web"', valueHint: "KIND" },
  timeout: { type: "string", description: "Seconds to wait (default 10)", valueHint: "S" },
} as const;

/** The client library for this command (the app's identity from --home) and the command's deadline. */
function clientFor(args: { server: string; timeout?: string; home?: string; config?: string }): { client: FindingsClient; signal: AbortSignal } {
  if (!args.server.includes("#")) throw new Error("Invalid flag --server: the node key is needed to pin the link (allowed: ip:port#<64 hex key>)");
  const seconds = args.timeout === undefined ? 10 : Number(args.timeout);
  if (!Number.isFinite(seconds) || seconds <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
  return { client: new FindingsClient({ server: args.server, home: loadContext(args).home }), signal: AbortSignal.timeout(seconds * 1000) };
}

const registerCommand = defineCommand({
  meta: { name: "register", description: "List my public TCP server (this host's address as the node sees it, --port) for a kind" },
  args: { ...commonArgs, ...jsonArg, ...serverArgs, port: { type: "string", required: true, description: "TCP port of my server", valueHint: "N" } },
  run: action(async ({ args }) => {
    const port = Number(args.port);
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`Invalid flag --port: ${JSON.stringify(args.port)} is not allowed (allowed: 1..65535)`);
    const { client, signal } = clientFor(args);
    const out = { listed: true, kind: args.kind, address: await client.share.register(args.kind, port, { signal }) };
    if (args.json) printJson(out);
    else process.stdout.write(`listed ${out.address} for ${args.kind}\n`);
  }),
});

const fetchCommand = defineCommand({
  meta: { name: "fetch", description: `Fetch up to ${SHARE_FETCH_MAX} listed TCP servers of a kind` },
  args: { ...commonArgs, ...jsonArg, ...serverArgs, max: { type: "string", description: `At most this many (1..${SHARE_FETCH_MAX})`, valueHint: "N" } },
  run: action(async ({ args }) => {
    const max = args.max === undefined ? SHARE_FETCH_MAX : Number(args.max);
    if (!Number.isInteger(max) || max < 1 || max > SHARE_FETCH_MAX) throw new Error(`Invalid flag --max: ${JSON.stringify(args.max)} is not allowed (allowed: 1..${SHARE_FETCH_MAX})`);
    const { client, signal } = clientFor(args);
    const list = await client.share.fetch(args.kind, { max, signal });
    const servers = list.map((e) => ({ address: e.address, verifiedAt: e.verifiedAt.toISOString() }));
    if (args.json) printJson({ kind: args.kind, servers });
    else process.stdout.write(servers.length ? servers.map((s) => `${s.address}  verified ${s.verifiedAt}`).join("\n") + "\n" : `no listed servers for ${args.kind}\n`);
  }),
});

export const shareCommand = defineCommand({
  meta: { name: "share", description: "TCP server registry of a node: register my server, or fetch listed ones" },
  subCommands: { register: registerCommand, fetch: fetchCommand },
});
