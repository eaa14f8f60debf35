// `findings whoami`: my public address as one server sees it, over QUIC or (--tcp) HTTPS.
import { defineCommand } from "citty";
import { parseAddress } from "../contracts/index.ts";
import { httpsWhoami } from "../transport/index.ts";
import { quicWhoami } from "../transport/index.ts";
import { action, commonArgs, jsonArg, printJson } from "./common.ts";

export const whoamiCommand = defineCommand({
  meta: { name: "whoami", description: "Print my public address as a server sees it (QUIC, or --tcp for HTTPS)" },
  args: {
    ...commonArgs,
    ...jsonArg,
    server: { type: "string", description: "Server ip:port[#key]; with the key the QUIC link is bootstrapped and pinned", valueHint: "ADDR", required: true },
    tcp: { type: "boolean", description: "Ask over HTTPS (GET /whoami on the TLS port) instead of QUIC" },
    timeout: { type: "string", description: "Seconds to wait (default 5)", valueHint: "S" },
  },
  run: action(async ({ args }) => {
    const server = parseAddress(args.server, "--server");
    const timeoutMs = args.timeout === undefined ? 5000 : Number(args.timeout) * 1000;
    if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) throw new Error(`Invalid flag --timeout: ${JSON.stringify(args.timeout)} is not allowed (allowed: a positive number of seconds)`);
    const signal = AbortSignal.timeout(timeoutMs);
    const serverText = args.server.split("#")[0]!;
    let result: { address: string; via: "quic" | "https"; server: string; rttMs: number; pinned: boolean };
    if (args.tcp) {
      const r = await httpsWhoami(server, { signal });
      result = { address: r.address, via: "https", server: serverText, rttMs: round(r.rttMs), pinned: false };
    } else {
      const r = await quicWhoami(server, { nodePublicKey: server.publicKey, signal, timeoutMs });
      result = { address: r.address, via: "quic", server: serverText, rttMs: round(r.rttMs), pinned: r.pinned };
    }
    if (args.json) printJson(result);
    else process.stdout.write(`${result.address}\n`);
  }),
});

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
