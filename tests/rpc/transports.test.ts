// One router behind a real QUIC endpoint and real WSS mesh links: the same handler and policy on both.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { createMeshLinks, type MeshLinks } from "../../src/mesh/link-service.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { ANY_TRUST, PINNED_OR_MESH, perHost, type RpcHandler } from "../../src/rpc/policy.ts";
import { createRouter, type Router } from "../../src/rpc/router.ts";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import { serveAppBootstrapOverWss, wssAppDialer } from "../../src/transport/app-bootstrap/wss.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../src/transport/tls/endpoint.ts";
import { createUdpClient, type UdpClient } from "../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { Status } from "../../src/wire/codec.ts";

let router: Router;
let nodeKey: NodeKey;
let udp: UdpEndpoint;
let tls: TlsEndpoint;
let mesh: MeshLinks;
let client: UdpClient;
let removeWss: () => void;
const text = (s: string) => new TextEncoder().encode(s);

/** Says who asked, as the router's context saw it. */
const whoAsks: RpcHandler = (payload, ctx) => text(`${ctx.transport} ${ctx.trust} ${ctx.remote.ip} ${ctx.peer.nodeId ?? "-"} ${payload.length}`);

beforeAll(async () => {
  router = createRouter();
  nodeKey = generateNodeKey();
  const cert = await createRunCertificate();
  udp = createUdpEndpoint({ cert, nodeKey, router }, { host: "127.0.0.1", port: 0 });
  tls = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0 });
  mesh = createMeshLinks({ tls, cert, nodeKey, router }, { allowSpecialTargets: true });
  removeWss = serveAppBootstrapOverWss({ links: mesh, nodeKey, cert });
  router.addAll([
    ["test.who", { trust: ANY_TRUST, rate: perHost(1000, 1000), maxInFlight: 8, maxPayloadBytes: 8, handler: whoAsks }],
    ["test.bound", { trust: PINNED_OR_MESH, rate: perHost(1000, 1000), maxInFlight: 8, maxPayloadBytes: 8, handler: whoAsks }],
    ["test.scarce", { trust: ANY_TRUST, rate: perHost(0.001, 2), maxInFlight: 8, maxPayloadBytes: 8, handler: whoAsks }],
  ]);
  await udp.start();
  await tls.start();
  await mesh.start();
  client = createUdpClient({}, { host: "127.0.0.1" });
  await client.start();
});

afterAll(async () => {
  removeWss();
  await client.stop();
  await mesh.stop();
  await tls.stop();
  await udp.stop();
});

const decode = (b: Uint8Array) => new TextDecoder().decode(b);

describe("one router, two transports", () => {
  test("the same handler answers a QUIC stream and a WSS link, each with its own context", async () => {
    const quic = await client.dial({ ip: "127.0.0.1", port: udp.port });
    const wss = await wssAppDialer().dial({ ip: "127.0.0.1", port: tls.port });
    const viaQuic = await quic.request("test.who", text("abc"));
    const viaWss = await wss.request("test.who", text("abcd"));
    expect(decode(viaQuic.payload)).toBe("quic untrusted 127.0.0.1 - 3");
    expect(decode(viaWss.payload)).toBe("wss untrusted 127.0.0.1 - 4");
    expect(router.stats().calls["test.who"]).toBe(2);
    wss.close();
  });

  test("the payload cap and the trust rule hold on both transports alike", async () => {
    const quic = await client.dial({ ip: "127.0.0.1", port: udp.port });
    const wss = await wssAppDialer().dial({ ip: "127.0.0.1", port: tls.port });
    for (const link of [quic, wss]) {
      const big = await link.request("test.who", new Uint8Array(9));
      expect(big).toMatchObject({ status: Status.BAD_REQUEST, error: "Cannot accept test.who of 9 bytes: limit is 8" });
      const bound = await link.request("test.bound");
      expect(bound).toMatchObject({ status: Status.UNAUTHENTICATED, error: "test.bound needs a pinned link: run the app bootstrap first" });
    }
    expect(router.stats().refused["test.bound"]).toEqual({ trust: 2 });
    wss.close();
  });

  test("QUIC and WSS requests from one host draw on the same per-host bucket", async () => {
    const quic = await client.dial({ ip: "127.0.0.1", port: udp.port });
    const wss = await wssAppDialer().dial({ ip: "127.0.0.1", port: tls.port });
    expect((await quic.request("test.scarce")).status).toBe(Status.OK);
    expect((await wss.request("test.scarce")).status).toBe(Status.OK);
    expect((await quic.request("test.scarce")).status).toBe(Status.RATE_LIMITED);
    expect((await wss.request("test.scarce")).status).toBe(Status.RATE_LIMITED);
    expect(router.counters().rpc_refused_rate).toBe(2);
    wss.close();
  });

  test("app.bind raises the link's trust on either transport: the bound app reaches pinned methods with its id", async () => {
    const appKey = generateNodeKey();
    const target = { nodePublicKey: nodeKey.publicKey };
    const overQuic = await bootstrapApp(client, { addr: { ip: "127.0.0.1", port: udp.port }, ...target }, { appKey });
    const overWss = await bootstrapApp(wssAppDialer(), { addr: { ip: "127.0.0.1", port: tls.port }, ...target }, { appKey });
    expect(decode((await overQuic.link.request("test.bound")).payload)).toBe(`quic pinned 127.0.0.1 ${appKey.nodeId} 0`);
    expect(decode((await overWss.link.request("test.bound")).payload)).toBe(`wss pinned 127.0.0.1 ${appKey.nodeId} 0`);
    expect((await overWss.link.request(METHOD.app.whoami)).status).toBe(Status.OK);
    overWss.link.close();
  });

  test("a route removed by its disposer is an unknown method on both transports", async () => {
    const remove = router.add("test.gone", { trust: ANY_TRUST, rate: perHost(10, 10), maxInFlight: 1, maxPayloadBytes: 0, handler: () => undefined });
    const quic = await client.dial({ ip: "127.0.0.1", port: udp.port });
    const wss = await wssAppDialer().dial({ ip: "127.0.0.1", port: tls.port });
    expect((await quic.request("test.gone")).status).toBe(Status.OK);
    remove();
    for (const link of [quic, wss]) expect(await link.request("test.gone")).toMatchObject({ status: Status.BAD_REQUEST, error: "unknown method test.gone" });
    wss.close();
  });
});
