// `findings whoami`: my public address as one server sees it, over QUIC or (--tcp) HTTPS. Over QUIC the link is
// bootstrapped and pinned (the key given, known, or learned on first use), so the node also names its reward
// address and identity id.
import { defineCommand } from "citty";
import { parseAddress } from "../contracts/index.ts";
import { errorLine } from "../errors.ts";
import { FindingsClient, knownHostName, knownHostsFile, type NodeInfo } from "../client/index.ts";
import { httpsWhoami } from "../transport/index.ts";
import { quicWhoami } from "../transport/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";
import { describeNode, nodeJson, noteLearnedKey } from "./node-info.ts";

export const whoamiCommand = defineCommand({
  meta: { name: "whoami", description: "Print my public address as a server sees it (QUIC, or --tcp for HTTPS)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    server: { type: "string", description: "Server ip:port, or ip:port#key to pin the key by hand (else known or learned on first use)", valueHint: "ADDR", required: true },
    tcp: { type: "boolean", description: "Ask over HTTPS (GET /whoami on the TLS port) instead of QUIC" },
    timeout: { type: "string", description: "Seconds to wait (default 5)", valueHint: "S" },
  },
  run: action(async ({ args }) => {
    const server = parseAddress(args.server, "--server");
    const timeoutMs = args.timeout === undefined ? 5000 : Number(args.timeout) * 1000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
    const signal = AbortSignal.timeout(timeoutMs);
    const serverText = args.server.split("#")[0]!;
    let result: { address: string; via: "quic" | "https"; server: string; rttMs: number; pinned: boolean; keySource?: string | null; node?: Record<string, string> | null; nodeError?: string };
    let node: NodeInfo | undefined;
    if (args.tcp) {
      const r = await httpsWhoami(server, { signal });
      result = { address: r.address, via: "https", server: serverText, rttMs: round(r.rttMs), pinned: false };
    } else {
      // No app identity is needed here: a fresh key per call, and the home's known-hosts file.
      const client = new FindingsClient({ server: args.server, knownHosts: knownHostsFile(loadContext(args).home) });
      try {
        const r = await client.whoami({ signal });
        noteLearnedKey(client, r.node);
        node = r.node;
        result = { address: r.address, via: "quic", server: serverText, rttMs: round(r.rttMs), pinned: true, keySource: r.node.keySource, node: nodeJson(r.node) };
      } catch (err) {
        // A node whose key cannot be had (no record yet, a key check refused) still answers on first contact;
        // a changed key is never passed over.
        if (server.publicKey || signal.aborted || client.knownHosts.get(knownHostName(server)) || (err instanceof Error && err.name === "KeyChangedError")) throw err;
        const r = await quicWhoami(server, { signal, timeoutMs });
        result = { address: r.address, via: "quic", server: serverText, rttMs: round(r.rttMs), pinned: r.pinned, keySource: null, node: null, nodeError: errorLine(err) };
        process.stderr.write(`findings: not pinned (${errorLine(err)}); answered on first contact\n`);
      }
    }
    if (args.json) printJson(result);
    else {
      process.stdout.write(`${result.address}\n`);
      if (node) process.stdout.write(`${describeNode(node)}\n`);
    }
  }),
});

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
