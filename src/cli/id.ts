// `findings id`: this node's identity (node id and X25519 public key), created on first use.
import { defineCommand } from "citty";
import { loadOrCreateNodeKey } from "../identity/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";

export const idCommand = defineCommand({
  meta: { name: "id", description: "Print this node's identity (node id, ECDH public key)" },
  args: { ...commonArgs, ...jsonArg },
  run: action(({ args }) => {
    const ctx = loadContext(args);
    const key = loadOrCreateNodeKey(ctx.home);
    const identityId = ctx.config.user_id || key.nodeId;
    if (args.json) printJson({ nodeId: key.nodeId, publicKey: key.publicKeyHex, identityId, home: ctx.home });
    else process.stdout.write(`node id     ${key.nodeId}\npublic key  ${key.publicKeyHex}\nidentity id ${identityId}\n`);
  }),
});
