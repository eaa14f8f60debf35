// The `findings` command line: the subcommand tree of DESIGN §1 (a subcommand appears when its capability works).
import { defineCommand, runMain } from "citty";
import { configCommand } from "./cli/index.ts";
import { devnetCommand } from "./cli/index.ts";
import { findCommand } from "./cli/index.ts";
import { idCommand } from "./cli/index.ts";
import { knownHostsCommand } from "./cli/index.ts";
import { peersCommand } from "./cli/index.ts";
import { probeCommand } from "./cli/index.ts";
import { punchCommand } from "./cli/index.ts";
import { serveCommand } from "./cli/index.ts";
import { shareCommand } from "./cli/index.ts";
import { statusCommand } from "./cli/index.ts";
import { whoamiCommand } from "./cli/index.ts";
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
    "known-hosts": knownHostsCommand,
  },
});

await runMain(main);
