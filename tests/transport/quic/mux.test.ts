// Request channels over real loopback QUIC: many requests on one stream, answers by id, the router's policy
// per request, and the channel's own limits against a hostile sender.
import { afterEach, describe, expect, test } from "bun:test";
import { QUICClient, QUICServer, events as quicEvents, type QUICConnection, type QUICStream } from "@matrixai/quic";
import { MAX_QUIC_REQUEST_BYTES } from "../../../src/constants.ts";
import { createRunCertificate, type RunCertificate } from "../../../src/identity/certificate.ts";
import { generateNodeKey } from "../../../src/identity/node-key.ts";
import { METHOD } from "../../../src/rpc/methods.ts";
import { clientQuicCrypto, quicLogger, serverQuicConfig, serverQuicCrypto } from "../../../src/transport/quic/config.ts";
import { QUIC_ALPN, QUIC_ALPN_PER_STREAM } from "../../../src/transport/quic/constants.ts";
import { newRpcCounters, serveStream } from "../../../src/transport/quic/rpc.ts";
import { createRouter } from "../../../src/rpc/router.ts";
import { whoamiRoute } from "../../../src/transport/quic/whoami-handler.ts";
import { expectOk } from "../../../src/transport/quic/link.ts";
import { concatBytes, encodeFrame, FrameReader, MUX_STREAM_MARK } from "../../../src/transport/quic/mux-frame.ts";
import { MAX_MUX_CHANNELS_PER_LINK, MAX_MUX_IN_FLIGHT } from "../../../src/transport/quic/mux-server.ts";
import { streamCodeToReason, streamReasonToCode } from "../../../src/transport/quic/stream-io.ts";
import { createUdpClient, type UdpClient } from "../../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint } from "../../../src/transport/udp/endpoint.ts";
import { decodeEnvelope, encodeEnvelope, Status } from "../../../src/wire/codec.ts";
import { open } from "../../rpc/open-policy.ts";
import { until } from "../../wait.ts";

let cert: RunCertificate;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});

async function endpoint(): Promise<UdpEndpoint> {
  cert ??= await createRunCertificate();
  const ep = createUdpEndpoint({ cert, nodeKey: generateNodeKey() }, { host: "127.0.0.1", port: 0 });
  await ep.start();
  cleanups.push(() => ep.stop());
  return ep;
}

async function client(): Promise<UdpClient> {
  const c = createUdpClient({}, { host: "127.0.0.1", port: 0 });
  await c.start();
  cleanups.push(() => c.stop());
  return c;
}

async function rawClient(port: number): Promise<QUICClient> {
  const c = await QUICClient.createQUICClient(
    { host: "127.0.0.1", port, localHost: "127.0.0.1", crypto: clientQuicCrypto, config: { verifyPeer: false, applicationProtos: [QUIC_ALPN] }, logger: quicLogger(), codeToReason: streamCodeToReason },
    { timer: 3000 },
  );
  cleanups.push(() => c.destroy({ force: true }));
  return c;
}

/** A bare @matrixai/quic stream, to put on a channel bytes that QuicLink would never send. */
async function rawChannel(port: number, on?: QUICClient) {
  const c = on ?? (await rawClient(port));
  const s = c.connection.newStream("bidi");
  const writer = s.writable.getWriter();
  const reader = (s.readable as unknown as ReadableStream<Uint8Array>).getReader();
  const frames = new FrameReader(MAX_QUIC_REQUEST_BYTES);
  return {
    write: (bytes: Uint8Array) => void writer.write(bytes).catch(() => {}),
    /** The next answer frame; rejects when the server resets the channel. */
    async next(): Promise<Uint8Array> {
      for (;;) {
        const f = frames.next();
        if (f) return f;
        const { done, value } = await reader.read();
        if (done) throw new Error("channel ended");
        frames.push(value);
      }
    },
  };
}

describe("request channel", () => {
  test("a link's requests share one channel and answers are matched by id, not by order", async () => {
    const ep = await endpoint();
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    ep.router.add("slow", open(async () => (await gate, new Uint8Array([1]))));
    ep.router.add("fast", open(() => new Uint8Array([2])));
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    const slow = link.request("slow");
    const fast = await link.request("fast");
    expect(expectOk(fast)).toEqual(new Uint8Array([2]));
    release();
    expect(expectOk(await slow)).toEqual(new Uint8Array([1]));
    const many = await Promise.all(Array.from({ length: 50 }, () => link.request("fast")));
    expect(many.every((a) => a.status === Status.OK)).toBe(true);
    expect(ep.counters().requests).toBe(52);
    expect(ep.counters().streams).toBe(1);
  });

  test("the router's policy holds per request: whoami's per-host rate refuses the excess on one channel", async () => {
    const ep = await endpoint();
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    // whoami allows a burst of 200 per host.
    const answers = await Promise.all(Array.from({ length: 260 }, () => link.request(METHOD.app.whoami)));
    const limited = answers.filter((a) => a.status === Status.RATE_LIMITED).length;
    expect(limited).toBeGreaterThan(0);
    expect(answers.length - limited).toBeGreaterThanOrEqual(200);
    expect(ep.router.stats().refused[METHOD.app.whoami]?.rate).toBe(limited);
    expect(ep.router.stats().calls[METHOD.app.whoami]).toBe(answers.length - limited);
  });

  test(`at most ${MAX_MUX_IN_FLIGHT} requests of one channel run at once; the rest wait and are answered`, async () => {
    const ep = await endpoint();
    let running = 0;
    let most = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    ep.router.add(
      "hold",
      open(async () => {
        most = Math.max(most, ++running);
        await gate;
        running--;
        return new Uint8Array(0);
      }),
    );
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    const all = Promise.all(Array.from({ length: MAX_MUX_IN_FLIGHT + 36 }, () => link.request("hold")));
    await until(() => running === MAX_MUX_IN_FLIGHT, { what: "the channel's in-flight cap reached" });
    // The next frames are not read while the cap is reached.
    await link.request(METHOD.app.whoami, undefined, { timeoutMs: 300 }).catch(() => {});
    expect(running).toBe(MAX_MUX_IN_FLIGHT);
    release();
    const answers = await all;
    expect(answers.every((a) => a.status === Status.OK)).toBe(true);
    expect(most).toBe(MAX_MUX_IN_FLIGHT);
  });

  test("an undecodable frame is answered BAD_REQUEST with id 0 and the channel keeps serving", async () => {
    const ep = await endpoint();
    const raw = await rawChannel(ep.port);
    raw.write(concatBytes([Uint8Array.of(MUX_STREAM_MARK), encodeFrame(Uint8Array.of(0xff, 0xff, 0xff)), encodeFrame(encodeEnvelope({ id: 9n, method: METHOD.app.whoami }))]));
    const bad = decodeEnvelope(await raw.next());
    expect(bad.id).toBe(0n);
    expect(bad.status).toBe(Status.BAD_REQUEST);
    const ok = decodeEnvelope(await raw.next());
    expect(ok.id).toBe(9n);
    expect(ok.status).toBe(Status.OK);
    expect(ep.counters().badRequests).toBe(1);
  });

  test("a frame announced over the limit resets the channel (tooLarge), is counted, and the endpoint still answers", async () => {
    const ep = await endpoint();
    const raw = await rawChannel(ep.port);
    raw.write(concatBytes([Uint8Array.of(MUX_STREAM_MARK), encodeFrame(new Uint8Array(MAX_QUIC_REQUEST_BYTES + 1)).subarray(0, 3)]));
    expect(String(await raw.next().catch((e: unknown) => e))).toMatch(/tooLarge/);
    expect(ep.counters().refusedLimits).toBe(1);
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    expect((await link.request(METHOD.app.whoami)).status).toBe(Status.OK);
  });
});

test(`a connection may hold ${MAX_MUX_CHANNELS_PER_LINK} request channels; one more is reset (refused) and counted`, async () => {
  const ep = await endpoint();
  const c = await rawClient(ep.port);
  const channels = [];
  for (let i = 0; i <= MAX_MUX_CHANNELS_PER_LINK; i++) {
    const ch = await rawChannel(ep.port, c);
    ch.write(concatBytes([Uint8Array.of(MUX_STREAM_MARK), encodeFrame(encodeEnvelope({ id: BigInt(i + 1), method: METHOD.app.whoami }))]));
    channels.push(ch);
    if (i < MAX_MUX_CHANNELS_PER_LINK) expect(decodeEnvelope(await ch.next()).status).toBe(Status.OK);
  }
  expect(String(await channels[MAX_MUX_CHANNELS_PER_LINK]!.next().catch((e: unknown) => e))).toMatch(/refused/);
  expect(ep.counters().refusedLimits).toBe(1);
  expect(ep.counters().streams).toBe(MAX_MUX_CHANNELS_PER_LINK);
});

describe("older peers", () => {
  test("a link to a server that speaks only findings/1 sends one request per stream", async () => {
    cert ??= await createRunCertificate();
    const router = createRouter();
    router.add(METHOD.app.whoami, whoamiRoute);
    const counters = newRpcCounters();
    const stop = new AbortController();
    const srv = new QUICServer({
      crypto: await serverQuicCrypto(),
      config: { ...serverQuicConfig(cert), applicationProtos: [QUIC_ALPN_PER_STREAM] },
      logger: quicLogger(),
      reasonToCode: streamReasonToCode,
      codeToReason: streamCodeToReason,
    });
    srv.addEventListener(quicEvents.EventQUICServerConnection.name, (evt: Event) => {
      const conn = (evt as quicEvents.EventQUICServerConnection).detail as QUICConnection;
      conn.addEventListener(quicEvents.EventQUICConnectionStream.name, (e: Event) => {
        const stream = (e as quicEvents.EventQUICConnectionStream).detail as QUICStream;
        void serveStream(stream, {
          router,
          counters,
          stopSignal: stop.signal,
          context: () => ({ transport: "quic", remote: { ip: conn.remoteHost, port: conn.remotePort }, connectionId: "", trust: "untrusted", peer: { key: null, nodeId: null }, promote: () => {} }),
        });
      });
    });
    await srv.start({ host: "127.0.0.1", port: 0 });
    cleanups.push(async () => {
      stop.abort();
      await srv.stop({ force: true });
    });
    const link = await (await client()).dial({ ip: "127.0.0.1", port: srv.port });
    const answers = await Promise.all(Array.from({ length: 5 }, () => link.request(METHOD.app.whoami)));
    expect(answers.every((a) => a.status === Status.OK)).toBe(true);
    expect(counters.streams).toBe(5);
  });

  test(`two current ends agree on ${QUIC_ALPN}: their requests share one channel`, async () => {
    const ep = await endpoint();
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    for (let i = 0; i < 3; i++) await link.request(METHOD.app.whoami);
    expect(ep.counters().streams).toBe(1);
    expect(ep.counters().requests).toBe(3);
  });
});
