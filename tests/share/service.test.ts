// The TCP server registry against real sockets on loopback: listed only after a successful TCP dial-back,
// fetch of at most 6, hidden and then dropped when the server goes away (seed 001 §分享池; DESIGN §5).
import { METHOD } from "../../src/rpc/methods.ts";
import { afterEach, describe, expect, setDefaultTimeout, test } from "bun:test";

// Real sockets on a shared machine: room for a busy scheduler.
setDefaultTimeout(20_000);
import { createServer, type Server } from "node:net";
import { createRunCertificate } from "../../src/identity/certificate.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { shareFetch, shareRegister } from "../../src/share/client.ts";
import { createShareService, type ShareService, type ShareServiceInit } from "../../src/share/service.ts";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import type { QuicLink } from "../../src/transport/quic/link.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { createUdpEndpoint } from "../../src/transport/udp/endpoint.ts";
import { encodeMessage, Status } from "../../src/wire/codec.ts";
import { ShareRegisterSchema } from "../../src/wire/gen/punch_pb.ts";
import { until } from "../wait.ts";

const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function setup(init: Partial<ShareServiceInit> = {}): Promise<{ service: ShareService; link: QuicLink }> {
  const key = generateNodeKey();
  const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey: key }, { host: "127.0.0.1", port: 0 });
  const service = createShareService({ udp: ep }, { kinds: ["app:web"], ...init });
  await ep.start();
  service.start();
  cleanups.push(async () => {
    service.stop();
    await ep.stop();
  });
  const c = createUdpClient({}, { host: "127.0.0.1" });
  await c.start();
  cleanups.push(() => c.stop());
  const { link } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: ep.port }, nodePublicKey: key.publicKey }, { appKey: generateNodeKey() });
  return { service, link };
}

async function tcpServer(): Promise<{ server: Server; port: number; close(): Promise<void> }> {
  const server = createServer((s) => s.destroy());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", () => r()));
  const port = (server.address() as { port: number }).port;
  let closed = false;
  const close = () =>
    closed
      ? Promise.resolve()
      : new Promise<void>((r) => {
          closed = true;
          server.close(() => r());
        });
  cleanups.push(close);
  return { server, port, close };
}

async function freeTcpPort(): Promise<number> {
  const s = await tcpServer();
  await s.close();
  return s.port;
}

async function failure(p: Promise<unknown>): Promise<string> {
  return p.then(
    () => "resolved",
    (e: unknown) => String(e),
  );
}

describe("TCP server registry", () => {
  test("an entry appears only after a successful dial-back", async () => {
    const { service, link } = await setup();
    const nobody = await freeTcpPort();
    expect(await failure(shareRegister(link, { kind: "app:web", port: nobody }))).toMatch(/not-found.*dial-back to 127\.0\.0\.1:\d+ over TCP failed/);
    expect(await shareFetch(link, "app:web")).toEqual([]);
    const srv = await tcpServer();
    let accepted = 0;
    srv.server.on("connection", () => accepted++);
    expect(await shareRegister(link, { kind: "app:web", port: srv.port })).toEqual({ ip: "127.0.0.1", port: srv.port });
    expect(accepted).toBe(1); // the node really dialled it
    const list = await shareFetch(link, "app:web");
    expect(list.map((e) => `${e.ip}:${e.port}`)).toEqual([`127.0.0.1:${srv.port}`]);
    expect(list[0]!.verifiedAtMs).toBeGreaterThan(Date.now() - 10_000);
    expect(service.counters()).toMatchObject({ registered: 1, dialFailures: 1 });
  });

  test("a server that goes away is hidden at the first failed recheck and dropped after the second", async () => {
    const { service, link } = await setup({ recheckMs: 150, sweepIntervalMs: 50, maxFailures: 2 });
    const srv = await tcpServer();
    await shareRegister(link, { kind: "app:web", port: srv.port });
    // Still there while it answers the rechecks.
    await until(() => service.counters().rechecks >= 1, { what: "a successful recheck" });
    expect((await shareFetch(link, "app:web")).length).toBe(1);
    await srv.close();
    await until(async () => (await shareFetch(link, "app:web")).length === 0, { what: "the server to vanish from fetch" });
    await until(() => service.pool.list("app:web").length === 0, { what: "the entry to be dropped" });
    expect(service.counters().dropped).toBe(1);
  });

  test("fetch returns at most 6 servers", async () => {
    const { link } = await setup();
    const servers = await Promise.all(Array.from({ length: 8 }, () => tcpServer()));
    // The per-IP cap (8) allows all of them from loopback.
    for (const s of servers) await shareRegister(link, { kind: "app:web", port: s.port });
    expect((await shareFetch(link, "app:web")).length).toBe(6);
    expect((await shareFetch(link, "app:web", { max: 2 })).length).toBe(2);
  });

  test("only the connection's own IP can be registered, and only for kinds served", async () => {
    const { link } = await setup();
    const other = await link.request(METHOD.share.register, encodeMessage(ShareRegisterSchema, { kind: "app:web", ip: "192.0.2.7", port: 80 }));
    expect(other.status).toBe(Status.REFUSED);
    expect(other.error).toMatch(/only the connection's own IP 127\.0\.0\.1 can be registered/);
    expect(await failure(shareRegister(link, { kind: "app:mail", port: 25 }))).toMatch(/refused.*not served/);
    expect(await failure(shareFetch(link, "app:mail"))).toMatch(/not served/);
  });
});
