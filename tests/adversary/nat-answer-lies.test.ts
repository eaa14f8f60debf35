// A hostile server answers the NAT probe's requests with malformed fields (a 15-byte token, a port of
// 0 or 70000, an empty server list entry). The prober — `findings probe`, or a serving node probing
// itself through its peers — must treat each as that server's failure: a report with the error in its
// evidence, and no rejected promise left without a handler.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { runProbe } from "../../src/nat/probe-client.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { encodeMessage, NatBeginAnswerSchema } from "../../src/wire/index.ts";
import { freeUdpTcpPort, loopbackPrefix, tempDir } from "../helpers.ts";
import { open } from "../rpc/open-policy.ts";

const PREFIX = loopbackPrefix();
const HOST = `${PREFIX}.1`;
const PORT = await freeUdpTcpPort(HOST);
const dir = tempDir("findings-adv-nat-");
let hostile: FindingsNode;

/** Rejections nobody handled while a test ran. */
const unhandled: unknown[] = [];
const onUnhandled = (reason: unknown) => void unhandled.push(reason);

beforeAll(async () => {
  process.on("unhandledRejection", onUnhandled);
  const home = join(dir.path, "hostile");
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const { config } = loadConfig({ home, flags: { host: HOST, server_uport: PORT, server_tport: PORT, admin: "", public: true, peers: [] } });
  hostile = await createNode({ config, home, log: silentLogger });
  await hostile.start();
});

afterAll(async () => {
  process.off("unhandledRejection", onUnhandled);
  await hostile?.stop();
  dir[Symbol.dispose]();
});

const lies: Array<[string, { token: Uint8Array; newPort: number }]> = [
  ["a 15-byte token", { token: new Uint8Array(15).fill(7), newPort: PORT + 1 }],
  ["an empty token", { token: new Uint8Array(0), newPort: PORT + 1 }],
  ["a port of 0", { token: new Uint8Array(16).fill(7), newPort: 0 }],
  ["a port of 70000", { token: new Uint8Array(16).fill(7), newPort: 70_000 }],
];

for (const [what, answer] of lies) {
  test(`nat.begin answered with ${what}: the probe reports the server's error and nothing is left unhandled`, async () => {
    unhandled.length = 0;
    hostile.udp.router.add(METHOD.nat.begin, open(() => encodeMessage(NatBeginAnswerSchema, answer), { transports: ["quic"] }), { replace: true });
    const report = await runProbe({ servers: [{ ip: HOST, port: PORT }], localIp: `${PREFIX}.100`, timeoutMs: 1_500, minServers: 1 });
    // Let any stray rejection of this run surface before looking.
    await Bun.sleep(0);
    await new Promise((r) => setImmediate(r));
    expect(unhandled.map(String)).toEqual([]);
    // The lie is named where it was told, and nothing was sent where the liar pointed.
    const begin = report.evidence.find((e) => e.test === "begin");
    expect(String(begin?.error)).toContain(`${METHOD.nat.begin} answer from ${HOST}:${PORT}`);
    expect(report.evidence.filter((e) => e.test === "new-port-mapping" || e.test === "formal-mapping")).toEqual([]);
  }, 20_000);
}
