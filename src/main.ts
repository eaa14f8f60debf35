// The `findings` command line: the subcommand tree of DESIGN §1 (a subcommand appears when its capability works).
// Each subcommand's code is loaded only when it runs (cli/index.ts): an idle node holds less.
// @peculiar/x509 needs the Reflect polyfill before it loads; the bundle loads subcommands lazily, so the
// polyfill goes first here rather than relying on the import order inside identity/certificate.ts.
import "reflect-metadata";
import { defineCommand, runMain } from "citty";
import { commands } from "./cli/index.ts";
import { VERSION } from "./version.ts";

const main = defineCommand({
  meta: { name: "findings", version: VERSION, description: "Findings: a public peer-to-peer service network node and client" },
  subCommands: commands,
});

await runMain(main);
