// A QUIC peer whose address moves under a live connection (NAT rebinding) over real loopback sockets: the link
// follows only a path QUIC validated, and a spoofed source never moves it.
import { afterEach, expect, test } from "bun:test";
import { METHOD } from "../../../src/rpc/methods.ts";
import { createRunCertificate } from "../../../src/identity/certificate.ts";
import { generateNodeKey } from "../../../src/identity/node-key.ts";
import { decodeMessage } from "../../../src/wire/codec.ts";
import { WhoamiResponseSchema } from "../../../src/wire/gen/findings_pb.ts";
import { expectOk, type QuicLink } from "../../../src/transport/quic/link.ts";
import { createUdpClient } from "../../../src/transport/udp/client.ts";
import { createUdpEndpoint } from "../../../src/transport/udp/endpoint.ts";
import { until } from "../../wait.ts";
import { startRebindingRelay } from "./rebinding-relay.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await Promise.resolve(c()).catch(() => {});
});

async function setup() {
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: generateNodeKey() }, { host: "127.0.0.1", port: 0 });
  await ep.start();
  cleanups.push(() => ep.stop());
  const moves: Array<{ to: string; from: string }> = [];
  let serverLink: QuicLink | undefined;
  ep.on("connect", (l) => void (serverLink = l));
  ep.on("migrate", (l, previous) => void moves.push({ to: `${l.remote.ip}:${l.remote.port}`, from: `${previous!.ip}:${previous!.port}` }));
  const relay = await startRebindingRelay({ ip: "127.0.0.1", port: ep.port });
  cleanups.push(() => relay.close());
  const c = createUdpClient({}, { host: "127.0.0.1", port: 0 });
  await c.start();
  cleanups.push(() => c.stop());
  const link = await c.dial({ ip: "127.0.0.1", port: relay.port });
  const whoamiPort = async () => decodeMessage(WhoamiResponseSchema, expectOk(await link.request(METHOD.app.whoami, undefined, { timeoutMs: 1_000 })), "WhoamiResponse").port;
  expect(await whoamiPort()).toBe(relay.mappedPort);
  return { relay, link, moves, whoamiPort, server: () => serverLink! };
}

test("a NAT re-mapping of a live connection moves the link once the new path is validated", async () => {
  const { relay, moves, whoamiPort, server } = await setup();
  const before = relay.mappedPort;
  const after = await relay.rebind();
  // The next request comes from the new port; quiche validates the path and the link follows.
  await until(async () => (await whoamiPort()) === after, { what: "whoami to report the new mapping" });
  expect(moves).toEqual([{ from: `127.0.0.1:${before}`, to: `127.0.0.1:${after}` }]);
  expect(server().remote).toEqual({ ip: "127.0.0.1", port: after });
});

test("a spoofed source racing the app's packets never moves the link", async () => {
  const { relay, moves, whoamiPort, server } = await setup();
  const real = relay.mappedPort;
  await relay.spoof(true);
  // Requests may stall while quiche probes the attacker's address; none of that is a validated move.
  for (let i = 0; i < 3; i++) await whoamiPort().catch(() => 0);
  // The race worked: quiche took the attacker's address for a new path and probed it.
  expect(relay.toAttacker).toBeGreaterThan(0);
  expect(moves).toEqual([]);
  expect(server().remote.port).toBe(real);
  await relay.spoof(false);
  await until(async () => (await whoamiPort().catch(() => 0)) === real, { what: "whoami from the real path again", timeoutMs: 15_000 });
  expect(moves).toEqual([]);
});
