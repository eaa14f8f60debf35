// The `findings` command line: the subcommand tree of DESIGN §1 (a subcommand appears when its capability works).
import { defineCommand, runMain } from "citty";
import { configCommand } from "./cli/config.ts";
import { idCommand } from "./cli/id.ts";
import { serveCommand } from "./cli/serve.ts";
import { whoamiCommand } from "./cli/whoami.ts";
import { VERSION } from "./version.ts";

const main = defineCommand({
  meta: { name: "findings", version: VERSION, description: "Findings: a public peer-to-peer service network node and client" },
  subCommands: {
    serve: serveCommand,
    whoami: whoamiCommand,
    config: configCommand,
    id: idCommand,
  },
});

await runMain(main);
