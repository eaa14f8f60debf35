// The TLS port under abuse and at its limits (DESIGN §2; STYLE §6): random bytes, stalled TLS
// handshakes, truncated and oversized frames, link limits, idle links, Bun's own WebSocket client,
// and stop() leaving nothing open. Real sockets on loopback.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import * as net from "node:net";
import * as tls from "node:tls";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { MAX_WS_FRAME_BYTES } from "../../../src/constants.ts";
import { createRunCertificate, type RunCertificate } from "../../../src/identity/certificate.ts";
import { createTlsEndpoint, type TlsEndpoint, type TlsEndpointInit } from "../../../src/transport/tls/endpoint.ts";
import { dialWss, PinMismatchError } from "../../../src/transport/ws/client.ts";
import { WS_CLOSE } from "../../../src/transport/ws/constants.ts";
import { closedWithin, closeOf, frame, OP, rawWs as rawUpgrade } from "../ws/raw-ws.ts";
import { until } from "../../wait.ts";

let cert: RunCertificate;
const endpoints: TlsEndpoint[] = [];
const sockets: net.Socket[] = [];

beforeAll(async () => {
  cert = await createRunCertificate();
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});
afterAll(async () => {
  await Promise.all(endpoints.map((e) => e.stop()));
});

/** An endpoint whose /mesh path echoes every message. */
async function echoEndpoint(init: Partial<TlsEndpointInit> = {}): Promise<TlsEndpoint> {
  const ep = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0, ...init });
  ep.onWebSocket("/mesh", (conn) => conn.start({ onMessage: (d) => conn.send(d), onClose() {} }));
  await ep.start();
  endpoints.push(ep);
  return ep;
}

async function whoami(port: number, host = "127.0.0.1"): Promise<{ ip: string; via: string }> {
  const res = await fetch(`https://${host.includes(":") ? `[${host}]` : host}:${port}/whoami`, { tls: { rejectUnauthorized: false } } as RequestInit);
  return (await res.json()) as { ip: string; via: string };
}

/** A hand-made WebSocket client on `path`: TLS, the upgrade, then raw bytes. */
const rawWs = (port: number, path = "/mesh") => rawUpgrade(port, { path }, sockets);

describe("TLS endpoint robustness", () => {
  test("random bytes on the TCP port are dropped and /whoami still answers", async () => {
    // Bytes that look like the start of an SSLv2-style hello make TLS wait for more: the handshake
    // timeout is what drops those.
    const ep = await echoEndpoint({ handshakeTimeoutMs: 500 });
    for (let i = 0; i < 3; i++) {
      const s = net.connect(ep.port, "127.0.0.1");
      sockets.push(s);
      s.on("error", () => {});
      await new Promise<void>((r) => s.once("connect", () => r()));
      s.resume(); // read the server's alert and FIN, or "close" never comes
      s.write(crypto.getRandomValues(new Uint8Array(512)));
      expect(await closedWithin(s, 3000)).toBe(true);
    }
    expect(await whoami(ep.port)).toMatchObject({ ip: "127.0.0.1", via: "https" });
    expect(ep.counts().tlsErrors).toBeGreaterThanOrEqual(1);
  });

  test("a client that stalls mid-handshake is dropped after handshakeTimeoutMs", async () => {
    const ep = await echoEndpoint({ handshakeTimeoutMs: 300 });
    const s = net.connect(ep.port, "127.0.0.1");
    sockets.push(s);
    s.on("error", () => {});
    s.resume();
    await new Promise<void>((r) => s.once("connect", () => r()));
    const t0 = Date.now();
    s.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])); // the start of a ClientHello, then silence
    expect((await whoami(ep.port)).ip).toBe("127.0.0.1");
    expect(await closedWithin(s, 3000)).toBe(true);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  });

  test("a truncated frame holds only its own link, which the idle timeout then closes", async () => {
    const ep = await echoEndpoint({ idleTimeoutMs: 600 });
    const { socket, status } = await rawWs(ep.port);
    expect(status).toBe(101);
    socket.write(new Uint8Array([0x82, 0xfe, 0x01])); // header cut in the middle of its length
    expect((await whoami(ep.port)).ip).toBe("127.0.0.1");
    const other = await dialWss({ ip: "127.0.0.1", port: ep.port });
    const echoed = new Promise<Uint8Array>((resolve) => other.conn.start({ onMessage: resolve, onClose() {} }));
    other.conn.send(new Uint8Array([4, 2]));
    expect(await echoed).toEqual(new Uint8Array([4, 2]));
    other.conn.close();
    expect(await closedWithin(socket, 3000)).toBe(true);
  });

  test("an unmasked client frame is answered with close 1002", async () => {
    const ep = await echoEndpoint();
    const { socket, frames } = await rawWs(ep.port);
    socket.write(frame(OP.binary, new Uint8Array([1]), false));
    await until(() => closeOf(frames) !== undefined, { what: "a close frame", timeoutMs: 2000 });
    expect(closeOf(frames)).toMatchObject({ code: WS_CLOSE.protocolError });
    expect(await closedWithin(socket, 3000)).toBe(true);
  });

  test("Bun's WebSocket client: echo works, an oversized frame gets 1009, and the server keeps serving", async () => {
    const ep = await echoEndpoint();
    const url = `wss://127.0.0.1:${ep.port}/mesh`;
    const open = (): Promise<WebSocket> =>
      new Promise((resolve, reject) => {
        const ws = new WebSocket(url, { tls: { rejectUnauthorized: false } } as unknown as string[]);
        ws.binaryType = "arraybuffer";
        ws.onopen = () => resolve(ws);
        ws.onerror = () => reject(new Error("websocket error"));
      });
    const big = await open();
    const closed = new Promise<CloseEvent>((r) => (big.onclose = r));
    big.send(new Uint8Array(MAX_WS_FRAME_BYTES + 1));
    expect((await closed).code).toBe(WS_CLOSE.messageTooBig);

    const ok = await open();
    const got = new Promise<ArrayBuffer>((r) => (ok.onmessage = (e) => r(e.data as ArrayBuffer)));
    ok.send(new Uint8Array(MAX_WS_FRAME_BYTES).fill(9));
    const back = new Uint8Array(await got);
    expect(back.length).toBe(MAX_WS_FRAME_BYTES);
    expect(back[MAX_WS_FRAME_BYTES - 1]).toBe(9);
    const done = new Promise<CloseEvent>((r) => (ok.onclose = r));
    ok.close(1000, "done");
    expect((await done).code).toBe(1000);
    expect((await whoami(ep.port)).via).toBe("https");
  });

  test("upgrades to unknown paths get 404, over the per-IP link limit 429, over the link limit 503", async () => {
    const perIp = await echoEndpoint({ maxLinksPerIp: 1 });
    expect((await rawWs(perIp.port, "/elsewhere")).status).toBe(404);
    expect((await rawWs(perIp.port)).status).toBe(101);
    expect((await rawWs(perIp.port)).status).toBe(429);
    const total = await echoEndpoint({ maxLinks: 1 });
    expect((await rawWs(total.port)).status).toBe(101);
    expect((await rawWs(total.port)).status).toBe(503);
    expect(total.counts().refusedUpgrades).toBe(1);
  });

  test("connections over the per-IP connection limit are dropped at accept", async () => {
    const ep = await echoEndpoint({ maxConnectionsPerIp: 2 });
    const open = async () => {
      const s = net.connect(ep.port, "127.0.0.1");
      sockets.push(s);
      s.on("error", () => {});
      s.resume();
      await new Promise<void>((r) => s.once("connect", () => r()));
      return s;
    };
    const a = await open();
    const b = await open();
    const c = await open();
    expect(await closedWithin(c, 2000)).toBe(true);
    expect(a.destroyed || b.destroyed).toBe(false);
  });

  test("a pinned dial to a certificate other than the pin is refused before anything is sent", async () => {
    const ep = await echoEndpoint();
    const other = await createRunCertificate();
    await expect(dialWss({ ip: "127.0.0.1", port: ep.port }, { pinSpki: other.spki })).rejects.toBeInstanceOf(PinMismatchError);
    const good = await dialWss({ ip: "127.0.0.1", port: ep.port }, { pinSpki: cert.spki });
    expect(good.peerSpki).toBe(cert.spki);
    good.conn.start({ onMessage() {}, onClose() {} });
    await until(() => good.conn.rttMs !== null, { what: "a ping round trip", timeoutMs: 2000 });
    good.conn.close();
    await good.conn.closed;
    // The refused dial never reached the WebSocket layer; the good one is gone once closed.
    await until(() => ep.counts().links === 0, { what: "no links left", timeoutMs: 2000 });
    expect(ep.counts().refusedUpgrades).toBe(0);
  });
});

describe("TLS endpoint stop()", () => {
  test("stop() is idempotent and leaves no handle open: a process using it exits by itself", async () => {
    const dir = mkdtempSync(join(tmpdir(), "findings-tls-stop-"));
    const root = join(import.meta.dir, "..", "..", "..");
    const script = join(dir, "run.ts");
    writeFileSync(
      script,
      `
import { createRunCertificate } from ${JSON.stringify(join(root, "src/identity/certificate.ts"))};
import { createTlsEndpoint } from ${JSON.stringify(join(root, "src/transport/tls/endpoint.ts"))};
import { dialWss } from ${JSON.stringify(join(root, "src/transport/ws/client.ts"))};
const cert = await createRunCertificate();
const ep = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0 });
ep.onWebSocket("/mesh", (conn) => conn.start({ onMessage: (d) => conn.send(d), onClose() {} }));
await ep.start();
const res = await fetch("https://127.0.0.1:" + ep.port + "/whoami", { tls: { rejectUnauthorized: false } });
await res.json();
const { conn } = await dialWss({ ip: "127.0.0.1", port: ep.port }, { pinSpki: cert.spki });
const echoed = new Promise((r) => conn.start({ onMessage: r, onClose() {} }));
conn.send(new Uint8Array([1]));
await echoed;
// The link stays open: stop() must close it.
await Promise.all([ep.stop(), ep.stop()]);
await conn.closed;
console.log("stopped", JSON.stringify(ep.counts()));
`,
    );
    try {
      const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
      const timer = setTimeout(() => proc.kill(), 8000);
      const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
      clearTimeout(timer);
      expect(err).toBe("");
      expect(out).toContain('stopped {"connections":0,"links":0');
      expect(code).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
