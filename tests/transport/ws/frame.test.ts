// RFC 6455 conformance of our WebSocket ends (src/transport/ws over the `ws` library), on the wire:
// a hand-made peer speaks raw frames over real TLS to the TLS endpoint (server end) and a raw TLS
// server answers dialWss (client end). Frame size limit, protocol errors, close codes, handshake.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import * as tls from "node:tls";
import { MAX_WS_FRAME_BYTES } from "../../../src/constants.ts";
import { PeerError } from "../../../src/errors.ts";
import { createRunCertificate, type RunCertificate } from "../../../src/identity/certificate.ts";
import { createTlsEndpoint, type TlsEndpoint } from "../../../src/transport/tls/endpoint.ts";
import { dialWss, PinMismatchError } from "../../../src/transport/ws/client.ts";
import { WS_CLOSE } from "../../../src/transport/ws/constants.ts";
import type { WsCloseInfo } from "../../../src/transport/ws/connection.ts";
import { until } from "../../wait.ts";
import { acceptKeyOf, closedWithin, closeOf, closePayload, createFrameParser, frame, messagesOf as messages, OP, rawFrame, rawWs, type PeerFrame } from "./raw-ws.ts";

const LIMIT = MAX_WS_FRAME_BYTES;
/** Asks the server end to close with a reason far over what a close frame holds. */
const LONG_CLOSE = 0xcc;

let cert: RunCertificate;
let ep: TlsEndpoint;
const serverCloses: WsCloseInfo[] = [];
const sockets: tls.TLSSocket[] = [];

beforeAll(async () => {
  cert = await createRunCertificate();
  ep = createTlsEndpoint({ cert }, { host: "127.0.0.1", port: 0, maxLinksPerIp: 64, maxConnectionsPerIp: 64 });
  ep.onWebSocket("/mesh", (conn) =>
    conn.start({
      onMessage(d) {
        if (d.length === 1 && d[0] === LONG_CLOSE) conn.close(4000, "é".repeat(200));
        else conn.send(d);
      },
      onClose: (info) => serverCloses.push(info),
    }),
  );
  await ep.start();
});
afterEach(() => {
  for (const s of sockets.splice(0)) s.destroy();
});
afterAll(async () => {
  await ep.stop();
});

const lengthExt = (n: number) => {
  const ext = new Uint8Array(8);
  new DataView(ext.buffer).setBigUint64(0, BigInt(n));
  return ext;
};

describe("server end: frames from a client", () => {
  test("reads masked client frames of every length encoding and answers unmasked", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    expect(ws.status).toBe(101);
    const sizes = [0, 1, 125, 126, 65535, 65536];
    const sent = sizes.map((n) => crypto.getRandomValues(new Uint8Array(n)));
    for (const p of sent) ws.socket.write(frame(OP.binary, p));
    await until(() => messages(ws.frames).length === sizes.length, { what: "the server's answer", timeoutMs: 3000 });
    expect(messages(ws.frames)).toEqual(sent);
    expect(ws.frames.every((f) => !f.masked)).toBe(true);
  });

  test("joins a frame fed one byte at a time, and answers a ping with its payload", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    const bytes = new Uint8Array([...frame(OP.binary, new Uint8Array(300).fill(7)), ...frame(OP.ping, new Uint8Array([9]))]);
    for (const b of bytes) ws.socket.write(new Uint8Array([b]));
    await until(() => messages(ws.frames).length === 1 && ws.frames.some((x) => x.type === "pong"), { what: "the server's answer", timeoutMs: 3000 });
    expect(messages(ws.frames)[0]).toEqual(new Uint8Array(300).fill(7));
    expect(ws.frames.find((f) => f.type === "pong")).toMatchObject({ data: new Uint8Array([9]) });
  });

  test("joins fragments into one message, with a ping in between", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    ws.socket.write(rawFrame(0x02, new Uint8Array([1, 2]))); // binary, FIN clear
    ws.socket.write(rawFrame(0x89, new Uint8Array([0xaa]))); // ping between fragments
    ws.socket.write(rawFrame(0x80, new Uint8Array([3]))); // continuation, FIN
    await until(() => messages(ws.frames).length === 1, { what: "the server's answer", timeoutMs: 3000 });
    expect(messages(ws.frames)[0]).toEqual(new Uint8Array([1, 2, 3]));
    expect(ws.frames.some((f) => f.type === "pong" && f.data[0] === 0xaa)).toBe(true);
  });

  test("a frame declaring limit+1 bytes is closed with 1009 from its header alone", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    ws.socket.write(rawFrame(0x82, new Uint8Array(0), { len7: 127, ext: lengthExt(LIMIT + 1) })); // no payload follows
    await until(() => closeOf(ws.frames) !== undefined, { what: "the server's answer", timeoutMs: 3000 });
    expect(closeOf(ws.frames)!.code).toBe(WS_CLOSE.messageTooBig);
  });

  test("a frame of exactly the limit is accepted", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    ws.socket.write(frame(OP.binary, new Uint8Array(LIMIT).fill(5)));
    await until(() => messages(ws.frames).length === 1, { what: "the server's answer", timeoutMs: 3000 });
    expect(messages(ws.frames)[0]!.length).toBe(LIMIT);
  });

  test("a 70 KiB frame is closed with 1009 and the server end reports it", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    const before = serverCloses.length;
    ws.socket.write(frame(OP.binary, new Uint8Array(70 * 1024)));
    await until(() => closeOf(ws.frames) !== undefined, { what: "the server's answer", timeoutMs: 3000 });
    expect(closeOf(ws.frames)!.code).toBe(WS_CLOSE.messageTooBig);
    expect(messages(ws.frames)).toEqual([]);
    await until(() => serverCloses.length > before, { what: "the server end's close", timeoutMs: 3000 });
    expect(serverCloses.at(-1)).toMatchObject({ code: WS_CLOSE.messageTooBig, byPeer: false });
  });

  test("fragments adding up to limit+1 close with 1009", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    ws.socket.write(rawFrame(0x02, new Uint8Array(0)));
    ws.socket.write(rawFrame(0x00, new Uint8Array(LIMIT / 2)));
    ws.socket.write(rawFrame(0x80, new Uint8Array(LIMIT / 2 + 1)));
    await until(() => closeOf(ws.frames) !== undefined, { what: "the server's answer", timeoutMs: 3000 });
    expect(closeOf(ws.frames)!.code).toBe(WS_CLOSE.messageTooBig);
  });

  const refused: [string, () => Uint8Array, number][] = [
    ["an unmasked client frame", () => frame(OP.binary, new Uint8Array([1]), false), WS_CLOSE.protocolError],
    ["reserved bits", () => rawFrame(0xc2, new Uint8Array([1])), WS_CLOSE.protocolError],
    ["an unknown opcode", () => rawFrame(0x83, new Uint8Array([1])), WS_CLOSE.protocolError],
    ["a control frame over 125 bytes", () => rawFrame(0x89, new Uint8Array(126)), WS_CLOSE.protocolError],
    ["a fragmented control frame", () => rawFrame(0x09, new Uint8Array([1])), WS_CLOSE.protocolError],
    ["a continuation without a message", () => rawFrame(0x80, new Uint8Array([1])), WS_CLOSE.protocolError],
    ["a new message before the last one ended", () => new Uint8Array([...rawFrame(0x02, new Uint8Array([1])), ...rawFrame(0x82, new Uint8Array([2]))]), WS_CLOSE.protocolError],
    ["a 1-byte close body", () => rawFrame(0x88, new Uint8Array([3])), WS_CLOSE.protocolError],
    ["close code 1005 on the wire", () => rawFrame(0x88, new Uint8Array([0x03, 0xed])), WS_CLOSE.protocolError],
    ["a close reason that is not UTF-8", () => rawFrame(0x88, new Uint8Array([0x03, 0xe8, 0xff, 0xfe])), WS_CLOSE.invalidPayload],
    ["a text message (envelopes are binary)", () => frame(OP.text, new TextEncoder().encode("hi")), WS_CLOSE.unsupportedData],
  ];
  for (const [name, make, code] of refused) {
    test(`${name} is closed with ${code} and nothing is echoed`, async () => {
      const ws = await rawWs(ep.port, {}, sockets);
      ws.socket.write(make());
      await until(() => closeOf(ws.frames) !== undefined, { what: "the server's answer", timeoutMs: 3000 });
      expect(closeOf(ws.frames)!.code).toBe(code);
      expect(messages(ws.frames)).toEqual([]);
      expect(await closedWithin(ws.socket, 3000)).toBe(true);
    });
  }

  test("a 16-bit length under 126 is read: `ws` does not enforce the minimal encoding (RFC 6455 §5.2 binds the sender)", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    ws.socket.write(rawFrame(0x82, new Uint8Array([1, 2, 3, 4, 5]), { len7: 126, ext: new Uint8Array([0, 5]) }));
    await until(() => messages(ws.frames).length === 1, { what: "the server's answer", timeoutMs: 3000 });
    expect(messages(ws.frames)[0]).toEqual(new Uint8Array([1, 2, 3, 4, 5]));
  });

  test("a close frame is echoed with its code, reported with its reason, and ends reading", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    const before = serverCloses.length;
    ws.socket.write(new Uint8Array([...frame(OP.close, closePayload(4001, "bye")), ...frame(OP.binary, new Uint8Array([1]))]));
    await until(() => closeOf(ws.frames) !== undefined, { what: "the server's answer", timeoutMs: 3000 });
    expect(closeOf(ws.frames)!.code).toBe(4001);
    expect(messages(ws.frames)).toEqual([]);
    await until(() => serverCloses.length > before, { what: "the server end's close", timeoutMs: 3000 });
    expect(serverCloses.at(-1)).toEqual({ code: 4001, reason: "bye", byPeer: true });
    expect(await closedWithin(ws.socket, 3000)).toBe(true);
  });

  test("close reasons are cut to fit a control frame", async () => {
    const ws = await rawWs(ep.port, {}, sockets);
    ws.socket.write(frame(OP.binary, new Uint8Array([LONG_CLOSE])));
    await until(() => closeOf(ws.frames) !== undefined, { what: "the server's answer", timeoutMs: 3000 });
    const close = closeOf(ws.frames)!;
    expect(close.code).toBe(4000);
    expect(close.length).toBeLessThanOrEqual(125);
    expect(close.reason).toBe("é".repeat(61));
  });

  test("random bytes end only their own link, with at most one close of a protocol code", async () => {
    const links = await Promise.all(Array.from({ length: 24 }, () => rawWs(ep.port, {}, sockets)));
    links.forEach((ws, i) => ws.socket.write(crypto.getRandomValues(new Uint8Array(1 + ((i * 37) % 200)))));
    await Bun.sleep(300); // asserts what comes back within 300 ms: at most one close per link
    for (const ws of links) {
      const closes = ws.frames.filter((f) => f.type === "close");
      expect(closes.length).toBeLessThanOrEqual(1);
      for (const c of closes) expect([1002, 1003, 1007, 1009]).toContain((c as { code: number }).code);
    }
    const ok = await rawWs(ep.port, {}, sockets);
    ok.socket.write(frame(OP.binary, new Uint8Array([42])));
    await until(() => messages(ok.frames).length === 1, { what: "the server's answer", timeoutMs: 3000 });
  });
});

describe("opening handshake, server end", () => {
  test("Sec-WebSocket-Accept matches RFC 6455 §1.3's example; no extension is agreed", async () => {
    const ws = await rawWs(ep.port, { key: "dGhlIHNhbXBsZSBub25jZQ==", headers: { "Sec-WebSocket-Extensions": "permessage-deflate" } }, sockets);
    expect(ws.status).toBe(101);
    expect(ws.head).toContain("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    expect(ws.head.toLowerCase()).not.toContain("sec-websocket-extensions");
  });

  test("broken upgrade requests get an HTTP error, counted as refused", async () => {
    const before = ep.counts().refusedUpgrades;
    expect((await rawWs(ep.port, { method: "POST" }, sockets)).status).toBe(405);
    expect((await rawWs(ep.port, { headers: { Upgrade: "h2c" } }, sockets)).status).toBe(400);
    expect((await rawWs(ep.port, { key: "short" }, sockets)).status).toBe(400);
    expect((await rawWs(ep.port, { headers: { "Sec-WebSocket-Key": null } }, sockets)).status).toBe(400);
    const v7 = await rawWs(ep.port, { headers: { "Sec-WebSocket-Version": "7" } }, sockets);
    expect(v7.status).toBe(400);
    expect(v7.head).toMatch(/Sec-WebSocket-Version: 13/);
    expect(ep.counts().refusedUpgrades - before).toBe(5);
    // Without "Connection: Upgrade" it is no upgrade: a plain request, which the route table answers.
    expect((await rawWs(ep.port, { headers: { Connection: "close" } }, sockets)).status).toBe(404);
  });
});

/** A TLS server that answers one upgrade by hand (`answer` gets the request's key) and records what
 *  the client sends after it. */
async function rawServer(answer: (key: string) => Uint8Array | string) {
  const got = { bytes: 0, text: "", frames: [] as PeerFrame[] };
  const parser = createFrameParser();
  const srv = tls.createServer({ key: cert.keyPem, cert: cert.certPem }, (s) => {
    s.on("error", () => {});
    let answered = false;
    s.on("data", (chunk: Buffer) => {
      got.bytes += chunk.length;
      if (answered) {
        got.frames.push(...parser.push(chunk));
        return;
      }
      got.text += chunk.toString("latin1");
      if (!got.text.includes("\r\n\r\n")) return;
      answered = true;
      const key = /sec-websocket-key: *(\S+)/i.exec(got.text)?.[1] ?? "";
      s.write(answer(key));
    });
  });
  await new Promise<void>((r) => srv.listen(0, "127.0.0.1", () => r()));
  const port = (srv.address() as { port: number }).port;
  return { port, got, close: () => new Promise<void>((r) => srv.close(() => r())) };
}

const switching = (key: string, accept = acceptKeyOf(key)) =>
  `HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: ${accept}\r\n\r\n`;
const withFrames = (head: string, ...frames: Uint8Array[]) => new Uint8Array([...Buffer.from(head, "latin1"), ...frames.flatMap((f) => [...f])]);

describe("client end: dialWss against a hand-made server", () => {
  test("reads unmasked frames sent with the 101, held until start(); masks its own", async () => {
    const srv = await rawServer((key) => withFrames(switching(key), frame(OP.binary, new Uint8Array([1, 2, 3]), false)));
    try {
      const { conn } = await dialWss({ ip: "127.0.0.1", port: srv.port });
      await Bun.sleep(50); // the frames arrive before start(): they must be held
      const got: Uint8Array[] = [];
      conn.start({ onMessage: (d) => got.push(d), onClose() {} });
      await until(() => got.length === 1, { what: "the message", timeoutMs: 3000 });
      expect(got[0]).toEqual(new Uint8Array([1, 2, 3]));
      conn.send(new Uint8Array([4]));
      await until(() => srv.got.frames.some((f) => f.type === "message"), { what: "our message at the server", timeoutMs: 3000 });
      expect(srv.got.frames.every((f) => f.masked)).toBe(true);
      expect(srv.got.frames.find((f) => f.type === "message")).toMatchObject({ data: new Uint8Array([4]) });
      conn.close();
    } finally {
      await srv.close();
    }
  });

  test("a masked server frame is closed with 1002", async () => {
    const srv = await rawServer((key) => withFrames(switching(key), frame(OP.binary, new Uint8Array([1]), true)));
    try {
      const { conn } = await dialWss({ ip: "127.0.0.1", port: srv.port });
      conn.start({ onMessage() {}, onClose() {} });
      expect((await conn.closed).code).toBe(WS_CLOSE.protocolError);
      expect(closeOf(srv.got.frames)?.code).toBe(WS_CLOSE.protocolError);
    } finally {
      await srv.close();
    }
  });

  test("a server frame over maxFrameBytes is closed with 1009", async () => {
    const srv = await rawServer((key) => withFrames(switching(key), frame(OP.binary, new Uint8Array(LIMIT + 1), false)));
    try {
      const { conn } = await dialWss({ ip: "127.0.0.1", port: srv.port });
      const got: Uint8Array[] = [];
      conn.start({ onMessage: (d) => got.push(d), onClose() {} });
      expect((await conn.closed).code).toBe(WS_CLOSE.messageTooBig);
      expect(got).toEqual([]);
    } finally {
      await srv.close();
    }
  });

  test("a wrong Sec-WebSocket-Accept or a non-101 answer is refused with PeerError", async () => {
    const wrong = await rawServer((key) => switching(key, "AAAAAAAAAAAAAAAAAAAAAAAAAAA="));
    const busy = await rawServer(() => "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    try {
      await expect(dialWss({ ip: "127.0.0.1", port: wrong.port })).rejects.toBeInstanceOf(PeerError);
      const err = await dialWss({ ip: "127.0.0.1", port: busy.port }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PeerError);
      expect(String(err)).toContain("503");
    } finally {
      await wrong.close();
      await busy.close();
    }
  });

  test("a pin mismatch is a PinMismatchError and not one byte follows the TLS handshake", async () => {
    const srv = await rawServer((key) => switching(key));
    try {
      const other = await createRunCertificate();
      const err = await dialWss({ ip: "127.0.0.1", port: srv.port }, { pinSpki: other.spki }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(PinMismatchError);
      expect(err).toMatchObject({ expectedSpki: other.spki, actualSpki: cert.spki });
      await Bun.sleep(100); // asserts silence: the refused dial sends the server nothing within 100 ms
      expect(srv.got.bytes).toBe(0);
      // The same server with the right pin gets the upgrade request.
      const { conn, peerSpki } = await dialWss({ ip: "127.0.0.1", port: srv.port }, { pinSpki: cert.spki });
      expect(peerSpki).toBe(cert.spki);
      expect(srv.got.text).toStartWith("GET /mesh HTTP/1.1\r\n");
      conn.close();
    } finally {
      await srv.close();
    }
  });
});
