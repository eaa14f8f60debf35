// Child of tests/node/node.test.ts: builds a whole node, starts it, stops it, and then must exit by
// itself. A timer, socket or server left open keeps the event loop alive and the parent sees a timeout.
import { embeddedDefaults } from "../../src/config/load.ts";
import { createNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";

const home = process.argv[2]!;
const config = { ...embeddedDefaults(), host: "127.0.0.1", server_uport: 0, server_tport: 0, admin: "127.0.0.1:0", public: true, stakes: { "app:chat": "addr-1" } };
const node = await createNode({ config, home, log: silentLogger });
await node.start();
const status = node.status() as { node: { id: string } };
await node.stop();
console.log(JSON.stringify({ stopped: true, id: status.node.id }));
