// A stranger floods app.hello over QUIC, the app bootstrap's first step, which costs the node two X25519
// agreements per fresh hello: it replays one hello, sends many on one connection, and spreads fresh hellos
// over hosts of one /24. The node answers a replay with the answer already made, answers one hello per
// first-contact connection, and no more fresh ones from one /24 than the per-/24 bucket allows, while an
// app from another network is still served.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { SEAL_PURPOSE } from "../../src/constants.ts";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { seal } from "../../src/identity/seal.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { createUdpClient, type UdpClient } from "../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { encodeMessage, Status } from "../../src/wire/index.ts";
import { AppHelloSchema, AppSessionSchema } from "../../src/wire/index.ts";
import { loopbackPrefix } from "../helpers.ts";

const PREFIX = loopbackPrefix();
const [A, B, C] = PREFIX.split(".").map(Number) as [number, number, number];
const OTHER_NET = `${A}.${B}.${(C + 1) % 256}`;
const HOST = `${PREFIX}.1`;
/** The per-/24 bucket of app.hello (src/transport/app-bootstrap/handlers.ts). */
const NET_BURST = 40;
const NET_RATE_PER_S = 10;
let ep: UdpEndpoint;
let nodeKey: NodeKey;
const clients = new Map<string, UdpClient>();

function hello(appKey = generateNodeKey()): Uint8Array {
  const session = encodeMessage(AppSessionSchema, { sessionId: crypto.getRandomValues(new Uint8Array(16)) });
  return encodeMessage(AppHelloSchema, { publicKey: appKey.publicKey, sealedSession: seal(appKey.privateKey, nodeKey.publicKey, SEAL_PURPOSE.appHello, session) });
}

async function clientAt(ip: string): Promise<UdpClient> {
  let c = clients.get(ip);
  if (!c) {
    c = createUdpClient({}, { host: ip });
    await c.start();
    clients.set(ip, c);
  }
  return c;
}

/** One fresh first-contact connection from `ip`, one request on it. */
async function ask(ip: string, payload: Uint8Array): Promise<{ status: Status; payload: Uint8Array }> {
  const link = await (await clientAt(ip)).dial({ ip: HOST, port: ep.port });
  try {
    return await link.request(METHOD.app.hello, payload);
  } finally {
    void Promise.resolve(link.close()).catch(() => {});
  }
}

beforeAll(async () => {
  nodeKey = generateNodeKey();
  ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey }, { host: HOST, port: 0 });
  await ep.start();
});

afterAll(async () => {
  for (const c of clients.values()) await c.stop().catch(() => {});
  await ep?.stop();
});

describe("app.hello flood", () => {
  test("a replayed hello gets the answer already made, byte for byte", async () => {
    const payload = hello();
    const a = await ask(`${PREFIX}.20`, payload);
    const b = await ask(`${PREFIX}.20`, payload);
    expect([a.status, b.status]).toEqual([Status.OK, Status.OK]);
    expect(Buffer.from(b.payload).equals(Buffer.from(a.payload))).toBe(true);
  });

  test("one first-contact connection gets one answered hello", async () => {
    const link = await (await clientAt(`${PREFIX}.21`)).dial({ ip: HOST, port: ep.port });
    expect((await link.request(METHOD.app.hello, hello())).status).toBe(Status.OK);
    expect((await link.request(METHOD.app.hello, hello())).status).toBe(Status.REFUSED);
    await link.close();
  });

  test("fresh hellos from 20 hosts of one /24 are answered no faster than the /24's bucket; another /24 still is", async () => {
    const started = performance.now();
    const statuses: Status[] = [];
    await Promise.all(
      Array.from({ length: 20 }, async (_, h) => {
        for (let i = 0; i < 4; i++) statuses.push((await ask(`${PREFIX}.${100 + h}`, hello())).status);
      }),
    );
    const elapsedS = (performance.now() - started) / 1000;
    expect(statuses.filter((s) => s === Status.OK).length).toBeLessThanOrEqual(NET_BURST + Math.ceil(NET_RATE_PER_S * elapsedS) + 1);
    expect(statuses.filter((s) => s === Status.RATE_LIMITED).length).toBeGreaterThan(0);
    expect((await ask(`${OTHER_NET}.7`, hello())).status).toBe(Status.OK);
  }, 60_000);
});
