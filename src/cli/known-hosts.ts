// `findings known-hosts [--forget ADDR]`: the node keys this home learned on first use (<home>/known_hosts.json),
// and forgetting one (after a node really changed its key, the next use learns the new one).
import { defineCommand } from "citty";
import { knownHostName, knownHostsFile, openKnownHosts } from "../client/index.ts";
import { parseAddress } from "../contracts/index.ts";
import { action, commonArgs, jsonArg, loadContext, printJson } from "./common.ts";

export const knownHostsCommand = defineCommand({
  meta: { name: "known-hosts", description: "List the node keys learned on first use, or --forget one" },
  args: {
    ...commonArgs,
    ...jsonArg,
    forget: { type: "string", description: "Forget the key of this node (ip:port; wss:ip:port for a WSS address)", valueHint: "ADDR" },
  },
  run: action(async ({ args }) => {
    const file = knownHostsFile(loadContext(args).home);
    const hosts = openKnownHosts(file);
    if (args.forget !== undefined) {
      const wss = args.forget.startsWith("wss:");
      const addr = parseAddress(wss ? args.forget.slice(4) : args.forget, "--forget");
      const name = knownHostName(addr, wss ? "wss" : "quic");
      const forgotten = hosts.forget(name);
      if (args.json) printJson({ forgotten, address: name, file });
      else process.stdout.write(forgotten ? `forgot the key of ${name}\n` : `${name} was not known\n`);
      return;
    }
    const list = hosts.list();
    if (args.json) printJson({ file, hosts: list });
    else process.stdout.write(list.length ? list.map((h) => `${h.address.padEnd(28)} ${h.key}  since ${h.firstSeen}`).join("\n") + "\n" : `no known hosts in ${file}\n`);
  }),
});
