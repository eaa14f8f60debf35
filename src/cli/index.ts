// The surface of src/cli: what other folders may import from it.
export { configCommand } from "./config.ts";
export { devnetCommand } from "./devnet.ts";
export { findCommand } from "./find.ts";
export { idCommand } from "./id.ts";
export { knownHostsCommand } from "./known-hosts.ts";
export { peersCommand } from "./peers.ts";
export { probeCommand } from "./probe.ts";
export { punchCommand } from "./punch.ts";
export { serveCommand } from "./serve.ts";
export { shareCommand } from "./share.ts";
export { statusCommand } from "./status.ts";
export { whoamiCommand } from "./whoami.ts";
