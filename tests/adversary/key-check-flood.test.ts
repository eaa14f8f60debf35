// A stranger floods mesh.key-check, the one request that makes a node do public-key work for anyone: it
// replays one challenge, asks many on one first-contact link, and spreads fresh challenges (fresh keys)
// over many hosts of one /24. The node must answer a replay from what it already made, take one key check
// per first-contact link, and answer no more fresh ones from one /24 than its per-/24 bucket allows, while
// a checker from another network is still answered.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { generateNodeKey } from "../../src/identity/index.ts";
import { makeChallenge } from "../../src/mesh/key-challenge.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { Status } from "../../src/wire/index.ts";
import { freeUdpTcpPort, loopbackPrefix, tempDir } from "../helpers.ts";
import { hostileLink } from "./hostile-link.ts";

const PREFIX = loopbackPrefix();
const [A, B, C] = PREFIX.split(".").map(Number) as [number, number, number];
/** Another /24 than the flood's. */
const OTHER_NET = `${A}.${B}.${(C + 1) % 256}`;
const HOST = `${PREFIX}.1`;
const dir = tempDir("findings-adv-keycheck-");
let victim: FindingsNode;
/** The per-/24 bucket of mesh.key-check (src/mesh/handlers.ts). */
const NET_BURST = 40;
const NET_RATE_PER_S = 10;

const challenge = () => makeChallenge(generateNodeKey(), victim.key.publicKey).payload;
const to = () => ({ ip: HOST, port: victim.tls.port });

beforeAll(async () => {
  const home = join(dir.path, "victim");
  mkdirSync(home, { recursive: true, mode: 0o700 });
  const port = await freeUdpTcpPort(HOST);
  const { config } = loadConfig({ home, flags: { host: HOST, server_uport: port, server_tport: port, admin: "", public: true, peers: [] } });
  victim = await createNode({ config, home, log: silentLogger });
  await victim.start();
  await victim.meshService.ready;
});

afterAll(async () => {
  await victim?.stop();
  dir[Symbol.dispose]();
});

describe("mesh.key-check flood", () => {
  test("a replayed challenge gets the answer already made, byte for byte", async () => {
    const payload = challenge();
    const answers: Uint8Array[] = [];
    for (let i = 0; i < 2; i++) {
      const link = await hostileLink(`${PREFIX}.20`, to());
      const a = await link.request(METHOD.mesh.keyCheck, payload);
      link.close();
      expect(a.status).toBe(Status.OK);
      answers.push(a.payload);
    }
    expect(Buffer.from(answers[1]!).equals(Buffer.from(answers[0]!))).toBe(true);
  });

  test("one first-contact link gets one key check; the second is refused and the link closed", async () => {
    const link = await hostileLink(`${PREFIX}.21`, to());
    expect((await link.request(METHOD.mesh.keyCheck, challenge())).status).toBe(Status.OK);
    const second = await link.request(METHOD.mesh.keyCheck, challenge()).catch((err: unknown) => ({ status: -1, error: String(err) }));
    expect(second.status).not.toBe(Status.OK);
    const info = await link.closed;
    expect(info.code).toBe(1008);
  });

  test("fresh challenges from 30 hosts of one /24 are answered no faster than the /24's bucket; another /24 still is", async () => {
    const started = performance.now();
    const statuses: number[] = [];
    await Promise.all(
      Array.from({ length: 30 }, async (_, h) => {
        for (let i = 0; i < 3; i++) {
          const link = await hostileLink(`${PREFIX}.${100 + h}`, to());
          const a = await link.request(METHOD.mesh.keyCheck, challenge()).catch(() => ({ status: -1 }));
          statuses.push(a.status);
          link.close();
        }
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    const ok = statuses.filter((s) => s === Status.OK).length;
    // The first tests of this file took a few tokens of the same /24 too.
    expect(ok).toBeLessThanOrEqual(NET_BURST + Math.ceil(NET_RATE_PER_S * elapsedS) + 1);
    expect(statuses.filter((s) => s === Status.RATE_LIMITED).length).toBeGreaterThan(0);
    const other = await hostileLink(`${OTHER_NET}.7`, to());
    expect((await other.request(METHOD.mesh.keyCheck, challenge())).status).toBe(Status.OK);
    other.close();
  }, 60_000);
});
