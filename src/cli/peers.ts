// `findings peers --server ADDR`: the Findings nodes a server knows, asked over QUIC as an app would (DESIGN §1, §5).
import { defineCommand } from "citty";
import { askPeers } from "../mesh/index.ts";
import { toJson } from "../mesh/index.ts";
import { formatAddress, parseAddress } from "../contracts/index.ts";
import { action, commonArgs, jsonArg, printJson } from "./common.ts";

export const peersCommand = defineCommand({
  meta: { name: "peers", description: "List the Findings nodes a server knows (its own record, then its candidate pool)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    server: { type: "string", description: "Server ip:port[#key] (its UDP port); with the key the link is bootstrapped and pinned", valueHint: "ADDR", required: true },
    timeout: { type: "string", description: "Seconds to wait (default 5)", valueHint: "S" },
  },
  run: action(async ({ args }) => {
    const server = parseAddress(args.server, "--server");
    const timeoutMs = parseTimeout(args.timeout);
    const result = await askPeers(server, { timeoutMs, signal: AbortSignal.timeout(timeoutMs * 2) });
    const peers = result.records.map(toJson);
    if (args.json) {
      printJson({ server: formatAddress(server.ip, server.port), pinned: result.pinned, count: peers.length, rejected: result.rejected, peers });
      return;
    }
    if (!peers.length) process.stdout.write("no peers known\n");
    for (const p of peers) process.stdout.write(`${p.id.slice(0, 16)}  ${p.addresses.join(",").padEnd(28)} ${p.nat.padEnd(10)} ${p.kinds.join(",") || "-"}\n`);
  }),
});

/** --timeout in seconds (positive), as ms. */
function parseTimeout(text: string | undefined): number {
  const ms = text === undefined ? 5000 : Number(text) * 1000;
  if (!Number.isFinite(ms) || ms <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(text)} is not allowed (allowed: a positive number of seconds)`);
  return ms;
}
