// `findings find KIND --server ADDR`: nodes that serve an app kind, from the server and its mesh, with server groups (DESIGN §8).
import { defineCommand } from "citty";
import { FindingsClient } from "../client/index.ts";
import { DEFAULT_SEARCH_HOPS, MAX_SEARCH_HOPS } from "../mesh/index.ts";
import { isValidKind } from "../wire/index.ts";
import { action, commonArgs, jsonArg, printJson } from "./common.ts";

export const findCommand = defineCommand({
  meta: { name: "find", description: "Find nodes that serve an app kind, e.g. blockchain:bitcoin" },
  args: {
    ...commonArgs,
    ...jsonArg,
    kind: { type: "positional", description: "App kind, e.g. blockchain:bitcoin", required: true },
    server: { type: "string", description: "Server ip:port[#key] (its UDP port); with the key the link is bootstrapped and pinned", valueHint: "ADDR", required: true },
    hops: { type: "string", description: `Mesh hops the search may travel, 0-${MAX_SEARCH_HOPS} (default ${DEFAULT_SEARCH_HOPS})`, valueHint: "N" },
    timeout: { type: "string", description: "Seconds to wait per step (default 5)", valueHint: "S" },
  },
  run: action(async ({ args }) => {
    const kind = String(args.kind);
    if (!isValidKind(kind)) throw new Error(`Invalid kind ${JSON.stringify(kind)}: expected letters, digits and ._:/- such as "blockchain:bitcoin"`);
    const client = new FindingsClient({ server: args.server });
    const timeoutMs = parseTimeout(args.timeout);
    const hops = args.hops === undefined ? DEFAULT_SEARCH_HOPS : Number(args.hops);
    if (!Number.isInteger(hops) || hops < 0 || hops > MAX_SEARCH_HOPS) throw new Error(`Invalid flag --hops: ${JSON.stringify(args.hops)} is not allowed (allowed: an integer from 0 to ${MAX_SEARCH_HOPS})`);
    const out = await client.find(kind, { hops, timeoutMs, signal: AbortSignal.timeout(timeoutMs * 3) });
    if (args.json) {
      printJson(out);
      return;
    }
    if (!out.nodes.length) {
      process.stdout.write(`no node serves ${kind}\n`);
      return;
    }
    for (const n of out.nodes) process.stdout.write(`${n.id.slice(0, 16)}  ${n.addresses.join(",").padEnd(28)} stake ${n.stakes[kind] ?? n.stakes["*"] ?? "-"}\n`);
    for (const g of out.groups) process.stdout.write(`group ${g.stakeAddress}: ${g.members.map((m) => m.identityId || m.nodeId.slice(0, 16)).join(", ")}\n`);
  }),
});

/** --timeout in seconds (positive), as ms. */
function parseTimeout(text: string | undefined): number {
  const ms = text === undefined ? 5000 : Number(text) * 1000;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(text)} is not allowed (allowed: a positive number of seconds)`);
  return ms;
}
