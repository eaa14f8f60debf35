// The surface of src/cli: each subcommand, loaded when it runs (a node never loads the client commands'
// code, a client never loads the node's).
import type { CommandDef } from "citty";

type Loader = () => Promise<CommandDef<any>>;

export const commands: Record<string, Loader> = {
  serve: () => import("./serve.ts").then((m) => m.serveCommand),
  whoami: () => import("./whoami.ts").then((m) => m.whoamiCommand),
  probe: () => import("./probe.ts").then((m) => m.probeCommand),
  peers: () => import("./peers.ts").then((m) => m.peersCommand),
  find: () => import("./find.ts").then((m) => m.findCommand),
  punch: () => import("./punch.ts").then((m) => m.punchCommand),
  share: () => import("./share.ts").then((m) => m.shareCommand),
  status: () => import("./status.ts").then((m) => m.statusCommand),
  devnet: () => import("./devnet.ts").then((m) => m.devnetCommand),
  config: () => import("./config.ts").then((m) => m.configCommand),
  id: () => import("./id.ts").then((m) => m.idCommand),
  "known-hosts": () => import("./known-hosts.ts").then((m) => m.knownHostsCommand),
};
