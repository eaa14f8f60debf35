// Child of tests/node/node.test.ts: starts a node whose TLS port (argv[3] = "tls") or admin port
// ("admin") is already taken. The start must fail, the services that had started must be stopped in
// reverse, their ports must be free again, and the process must then exit by itself.
import { createSocket } from "node:dgram";
import { createServer, type Server } from "node:net";
import { embeddedDefaults } from "../../src/config/load.ts";
import { lineLogger } from "../../src/contracts/logger.ts";
import { errorLine } from "../../src/errors.ts";
import { createNode } from "../../src/node.ts";
import { freePort } from "../helpers.ts";

const [home, clash] = [process.argv[2]!, process.argv[3]!];

async function listenTcp(port: number): Promise<Server> {
  const s = createServer();
  await new Promise<void>((resolve, reject) => {
    s.once("error", reject);
    s.listen(port, "127.0.0.1", () => resolve());
  });
  return s;
}
const closeTcp = (s: Server) => new Promise((r) => s.close(r));

/** Binds and closes a UDP socket on `port`: rejects with EADDRINUSE while the node still holds it. */
async function udpIsFree(port: number): Promise<boolean> {
  const s = createSocket("udp4");
  try {
    await new Promise<void>((resolve, reject) => {
      s.once("error", reject);
      s.bind(port, "127.0.0.1", () => resolve());
    });
    return true;
  } catch {
    return false;
  } finally {
    s.close();
  }
}

const events: string[] = [];
const recording = lineLogger((_level, msg, f) => {
  if (/^service (started|stopped)$/.test(msg)) events.push(`${msg.slice(8)} ${f.service}`);
});

const holder = await listenTcp(0);
const taken = (holder.address() as { port: number }).port;
const udpPort = await freePort();
const tcpPort = clash === "tls" ? taken : await freePort();
const config = {
  ...embeddedDefaults(),
  host: "127.0.0.1",
  server_uport: udpPort,
  server_tport: tcpPort,
  admin: clash === "admin" ? `127.0.0.1:${taken}` : "",
  public: true,
  stakes: { "app:chat": "addr-1" },
};
const node = await createNode({ config, home, log: recording });
let error = "started";
await node.start().catch((err) => (error = errorLine(err)));
const udpFree = await udpIsFree(udpPort);
let tcpFree = true;
if (clash === "admin") await listenTcp(tcpPort).then(closeTcp, () => (tcpFree = false));
await node.stop(); // nothing left to stop: a no-op
await closeTcp(holder);
console.log(JSON.stringify({ error, events, udpFree, tcpFree }));
