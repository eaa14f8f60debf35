// The `findings` command line: the subcommand tree of DESIGN §1 (a subcommand appears when its capability works).
import { defineCommand, runMain } from "citty";
import { configCommand } from "./cli/config.ts";
import { devnetCommand } from "./cli/devnet.ts";
import { findCommand } from "./cli/find.ts";
import { idCommand } from "./cli/id.ts";
import { peersCommand } from "./cli/peers.ts";
import { probeCommand } from "./cli/probe.ts";
import { punchCommand } from "./cli/punch.ts";
import { serveCommand } from "./cli/serve.ts";
import { shareCommand } from "./cli/share.ts";
import { statusCommand } from "./cli/status.ts";
import { whoamiCommand } from "./cli/whoami.ts";
import { VERSION } from "./version.ts";

const main = defineCommand({
  meta: { name: "findings", version: VERSION, description: "Findings: a public peer-to-peer service network node and client" },
  subCommands: {
    serve: serveCommand,
    whoami: whoamiCommand,
    probe: probeCommand,
    peers: peersCommand,
    find: findCommand,
    punch: punchCommand,
    share: shareCommand,
    status: statusCommand,
    devnet: devnetCommand,
    config: configCommand,
    id: idCommand,
  },
});

await runMain(main);
