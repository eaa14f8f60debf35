// What the mesh relies on from a WsConnection (src/transport/ws/connection.ts) over real TLS: ping
// RTT, idle timeout, backpressure both ways, close codes and reasons from either side.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import type * as tls from "node:tls";
import { createRunCertificate, type RunCertificate } from "../../../src/identity/certificate.ts";
import { createTlsEndpoint, type TlsEndpoint, type TlsEndpointInit } from "../../../src/transport/tls/endpoint.ts";
import { dialWss } from "../../../src/transport/ws/client.ts";
import { WS_CLOSE, WS_SEND_HIGH_WATER_BYTES } from "../../../src/transport/ws/constants.ts";
import type { WsCloseInfo, WsConnection, WsHandlers } from "../../../src/transport/ws/connection.ts";
import { until } from "../../wait.ts";
import { closeOf, frame, OP, rawWs } from "./raw-ws.ts";

let cert: RunCertificate;
const endpoints: TlsEndpoint[] = [];
const sockets: tls.TLSSocket[] = [];

beforeAll(async () => {
  cert = await createRunCertificate();
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});
afterAll(async () => {
  await Promise.all(endpoints.map((e) => e.stop()));
});

/** An endpoint whose /mesh links are handed to `onLink` (which must start or close them). */
async function endpoint(onLink: (conn: WsConnection) => void, init: Partial<TlsEndpointInit> = {}): Promise<TlsEndpoint> {
  const ep = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0, ...init });
  ep.onWebSocket("/mesh", onLink);
  await ep.start();
  endpoints.push(ep);
  return ep;
}

const quiet: WsHandlers = { onMessage() {}, onClose() {} };

describe("WsConnection", () => {
  test("both ends measure the ping round trip", async () => {
    const server: WsConnection[] = [];
    const ep = await endpoint((conn) => {
      server.push(conn);
      conn.start(quiet);
    });
    const { conn } = await dialWss({ ip: "127.0.0.1", port: ep.port });
    conn.start(quiet);
    await until(() => conn.rttMs !== null && server[0]?.rttMs != null, { what: "both RTTs", timeoutMs: 3000 });
    expect(conn.rttMs).toBeGreaterThanOrEqual(0);
    expect(conn.remote).toEqual({ ip: "127.0.0.1", port: ep.port });
    expect(server[0]!.local.port).toBe(ep.port);
    conn.close();
    await conn.closed;
  });

  test("a silent peer is closed with 1001 after the idle timeout; a peer that answers pings is not", async () => {
    const closes: WsCloseInfo[] = [];
    const ep = await endpoint((conn) => conn.start({ onMessage() {}, onClose: (i) => closes.push(i) }), { idleTimeoutMs: 300 });
    // The raw peer reads the server's pings but never answers them.
    const silent = await rawWs(ep.port, {}, sockets);
    // dialWss's end answers pings on its own, whatever its own idle timeout.
    const { conn: live } = await dialWss({ ip: "127.0.0.1", port: ep.port }, { idleTimeoutMs: 60_000 });
    live.start(quiet);
    await until(() => closeOf(silent.frames), { what: "the idle close", timeoutMs: 3000 });
    expect(closeOf(silent.frames)).toMatchObject({ code: WS_CLOSE.goingAway, reason: "idle timeout" });
    expect(silent.frames.some((f) => f.type === "ping")).toBe(true);
    expect(closes[0]).toEqual({ code: WS_CLOSE.goingAway, reason: "idle timeout", byPeer: false });
    await Bun.sleep(600); // asserts the live end outlives the idle timeout
    expect(live.isOpen).toBe(true);
    expect(closes.length).toBe(1);
    live.close();
    await live.closed;
  });

  test("backpressure: send() refuses over the high-water mark and reading pauses until the peer reads", async () => {
    const server: WsConnection[] = [];
    let received = 0;
    let echoed = 0;
    const ep = await endpoint((conn) => {
      server.push(conn);
      conn.start({
        onMessage(d) {
          received += 1;
          if (conn.send(d)) echoed += 1;
        },
        onClose() {},
      });
    });
    const peer = await rawWs(ep.port, {}, sockets);
    peer.socket.removeAllListeners("data");
    peer.socket.pause();
    // Enough echoes to fill both kernels' buffers and the high-water mark several times over.
    const count = 400;
    const size = 60_000;
    for (let i = 0; i < count; i++) peer.socket.write(frame(OP.binary, new Uint8Array(size)));
    await until(() => server[0] && server[0].bufferedAmount > WS_SEND_HIGH_WATER_BYTES, { what: "congestion at the server end", timeoutMs: 10_000 });
    await Bun.sleep(300); // lets the reads run into the stall (asserted below: nothing more within 300 ms)
    const stalledAt = received;
    expect(stalledAt).toBeLessThan(count);
    expect(server[0]!.send(new Uint8Array(1))).toBe(false);
    await Bun.sleep(300); // asserts the stall: nothing more is read within 300 ms
    expect(received).toBe(stalledAt);
    let bytes = 0;
    peer.socket.on("data", (c: Buffer) => (bytes += c.length));
    peer.socket.resume();
    await until(() => received === count, { what: "every message read", timeoutMs: 20_000 });
    // Echoes refused while congested are lost (the mesh answers them never, as with a dead link).
    await until(() => bytes >= echoed * size, { what: "every accepted echo read", timeoutMs: 20_000 });
    await until(() => server[0]!.bufferedAmount === 0, { what: "the queue drained", timeoutMs: 5_000 });
    expect(server[0]!.send(new Uint8Array(1))).toBe(true);
  }, 30_000);

  test("close codes and reasons reach the other end; our own is reported as ours", async () => {
    const closes: WsCloseInfo[] = [];
    const ep = await endpoint((conn) => conn.start({ onMessage() {}, onClose: (i) => closes.push(i) }));
    const { conn } = await dialWss({ ip: "127.0.0.1", port: ep.port });
    conn.start(quiet);
    await until(() => ep.counts().links === 1, { what: "the server end", timeoutMs: 3000 });
    conn.close(4000, "bye");
    expect(conn.isOpen).toBe(false);
    expect(conn.send(new Uint8Array(1))).toBe(false);
    expect(await conn.closed).toEqual({ code: 4000, reason: "bye", byPeer: false });
    await until(() => closes[0], { what: "the server's close", timeoutMs: 3000 });
    expect(closes[0]).toEqual({ code: 4000, reason: "bye", byPeer: true });

    // A code that may not go on the wire is sent as 1000.
    const second = await dialWss({ ip: "127.0.0.1", port: ep.port });
    second.conn.start(quiet);
    await until(() => ep.counts().links === 1, { what: "the server end", timeoutMs: 3000 });
    second.conn.close(WS_CLOSE.abnormal, "gone");
    await until(() => closes[1], { what: "the server's close", timeoutMs: 3000 });
    expect(closes[1]).toEqual({ code: WS_CLOSE.normal, reason: "gone", byPeer: true });
    await until(() => ep.counts().links === 0, { what: "no link left", timeoutMs: 3000 });
  });

  test("a link closed before start() is dropped at once and counted out", async () => {
    const closed: Promise<WsCloseInfo>[] = [];
    const ep = await endpoint((conn) => {
      closed.push(conn.closed);
      conn.close(WS_CLOSE.goingAway, "mesh not running");
    });
    const { conn } = await dialWss({ ip: "127.0.0.1", port: ep.port });
    conn.start(quiet);
    expect((await conn.closed).code).toBe(WS_CLOSE.abnormal);
    expect(await closed[0]).toEqual({ code: WS_CLOSE.goingAway, reason: "mesh not running", byPeer: false });
    await until(() => ep.counts().links === 0, { what: "no link left", timeoutMs: 3000 });
  });
});
