// The shared UDP endpoint over real loopback sockets: whoami, request/response rules, limits, raw datagrams.
import { open } from "../../rpc/open-policy.ts";
import { METHOD } from "../../../src/rpc/methods.ts";
import { afterEach, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { join } from "node:path";
import { QUICClient } from "@matrixai/quic";
import { MAX_QUIC_REQUEST_BYTES } from "../../../src/constants.ts";
import { QUIC_ALPN_PER_STREAM } from "../../../src/transport/quic/constants.ts";
import { PeerError } from "../../../src/errors.ts";
import { createRunCertificate, type RunCertificate } from "../../../src/identity/certificate.ts";
import { generateNodeKey } from "../../../src/identity/node-key.ts";
import { decodeEnvelope, decodeMessage, encodeEnvelope, Status } from "../../../src/wire/codec.ts";
import { WhoamiResponseSchema } from "../../../src/wire/gen/findings_pb.ts";
import { classifyDatagram } from "../../../src/transport/udp/classify.ts";
import { clientQuicCrypto, quicLogger } from "../../../src/transport/quic/config.ts";
import { streamCodeToReason } from "../../../src/transport/quic/stream-io.ts";
import { expectOk, type QuicLink } from "../../../src/transport/quic/link.ts";
import { quicWhoami } from "../../../src/transport/quic/whoami.ts";
import { createUdpClient, type UdpClient } from "../../../src/transport/udp/client.ts";
import { createUdpEndpoint, type UdpEndpoint, type UdpEndpointInit } from "../../../src/transport/udp/endpoint.ts";
import { tempDir } from "../../helpers.ts";
import { rejection, until } from "../../wait.ts";
import { lineLogger } from "../../../src/contracts/logger.ts";

let cert: RunCertificate;
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c().catch(() => {});
});


async function endpoint(init: Partial<UdpEndpointInit> = {}, logs?: string[]): Promise<UdpEndpoint> {
  cert ??= await createRunCertificate();
  const ep = createUdpEndpoint(
    { cert, nodeKey: generateNodeKey(), log: logs ? lineLogger((level, msg, fields) => logs.push(`${level} ${msg} ${JSON.stringify(fields)}`)) : undefined },
    { host: "127.0.0.1", port: 0, ...init },
  );
  await ep.start();
  cleanups.push(() => ep.stop());
  return ep;
}

async function client(host = "127.0.0.1", init: { idleTimeoutMs?: number } = {}): Promise<UdpClient> {
  const c = createUdpClient({}, { host, port: 0, ...init });
  await c.start();
  cleanups.push(() => c.stop());
  return c;
}

async function whoami(link: QuicLink): Promise<{ ip: string; port: number; transport: string }> {
  const { ip, port, transport } = decodeMessage(WhoamiResponseSchema, expectOk(await link.request(METHOD.app.whoami)), "WhoamiResponse");
  return { ip, port, transport };
}

/** A bare @matrixai/quic client speaking findings/1 (one request per stream, as older versions do), to put
 *  bytes on a stream that QuicLink would never send. */
async function rawStreamClient(port: number) {
  const c = await QUICClient.createQUICClient(
    { host: "127.0.0.1", port, localHost: "127.0.0.1", crypto: clientQuicCrypto, config: { verifyPeer: false, applicationProtos: [QUIC_ALPN_PER_STREAM] }, logger: quicLogger(), codeToReason: streamCodeToReason },
    { timer: 3000 },
  );
  cleanups.push(() => c.destroy({ force: true }));
  return {
    /** Writes `bytes`, closes, and reads everything back; rejects if the server resets the stream. */
    async exchange(bytes: Uint8Array): Promise<Uint8Array> {
      const s = c.connection.newStream("bidi");
      const w = s.writable.getWriter();
      const chunks: Uint8Array[] = [];
      const reading = (async () => {
        for await (const chunk of s.readable) chunks.push(chunk);
      })();
      // Not awaited: a write blocked on flow control is not released when the server resets the stream.
      void w.write(bytes).catch(() => {});
      void w.close().catch(() => {});
      await reading;
      return Buffer.concat(chunks);
    },
  };
}

describe("whoami over QUIC", () => {
  test("answers an IPv4 client with its address and port", async () => {
    const ep = await endpoint();
    const c = await client("127.0.0.1");
    const link = await c.dial({ ip: "127.0.0.1", port: ep.port });
    expect(await whoami(link)).toEqual({ ip: "127.0.0.1", port: c.port, transport: "quic" } as never);
    expect(link.pinned).toBe(false);
    expect(link.rttMs === undefined || link.rttMs >= 0).toBe(true);
  });

  test("answers an IPv6 client on [::1]", async () => {
    const ep = await endpoint({ host: "::1" });
    const c = await client("::1");
    const link = await c.dial({ ip: "::1", port: ep.port });
    expect(await whoami(link)).toEqual({ ip: "::1", port: c.port, transport: "quic" } as never);
  });

  test("reports an IPv4 client of a dual-stack endpoint as IPv4, not ::ffff:", async () => {
    const ep = await endpoint({ host: "::" });
    const c = await client("127.0.0.1");
    const link = await c.dial({ ip: "127.0.0.1", port: ep.port });
    expect((await whoami(link)).ip).toBe("127.0.0.1");
    expect(ep.links()[0]?.remote.ip).toBe("127.0.0.1");
  });

  test("quicWhoami opens and closes its own socket", async () => {
    const ep = await endpoint();
    const r = await quicWhoami({ ip: "127.0.0.1", port: ep.port });
    expect(r.ip).toBe("127.0.0.1");
    expect(r.port).toBeGreaterThan(0);
    expect(r.pinned).toBe(false);
    expect(r.rttMs).toBeGreaterThan(0);
  });

  test("serves many concurrent requests on one link", async () => {
    const ep = await endpoint();
    const c = await client();
    const link = await c.dial({ ip: "127.0.0.1", port: ep.port });
    // More than the 64-stream credit at once: the link must queue, not fail.
    const answers = await Promise.all(Array.from({ length: 200 }, () => whoami(link)));
    expect(answers.every((a) => a.port === c.port)).toBe(true);
    expect(ep.counters().requests).toBe(200);
  });
});

describe("request rules", () => {
  test("an unknown method is answered BAD_REQUEST naming it", async () => {
    const ep = await endpoint();
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    const answer = await link.request("no.such.method");
    expect(answer.status).toBe(Status.BAD_REQUEST);
    expect(answer.error).toBe("unknown method no.such.method");
    expect(ep.counters().badRequests).toBe(1);
  });

  test("garbage bytes on a stream get BAD_REQUEST and the endpoint keeps serving", async () => {
    const ep = await endpoint();
    const raw = await rawStreamClient(ep.port);
    const answer = decodeEnvelope(await raw.exchange(new Uint8Array([0xff, 0xff, 0xff, 0x01, 0x02, 0x03])));
    expect(answer.status).toBe(Status.BAD_REQUEST);
    expect(answer.error).toMatch(/^Cannot decode envelope/);
    // A decodable envelope that is not a request is refused too.
    const notRequest = decodeEnvelope(await raw.exchange(encodeEnvelope({ id: 7n, method: METHOD.app.whoami, status: Status.OK })));
    expect(notRequest.status).toBe(Status.BAD_REQUEST);
    const ok = decodeEnvelope(await raw.exchange(encodeEnvelope({ id: 8n, method: METHOD.app.whoami })));
    expect(ok.status).toBe(Status.OK);
    expect(ok.id).toBe(8n);
    expect(ep.counters().badRequests).toBe(2);
  });

  test("a request of limit+1 bytes is reset, one of exactly the limit is read, and the endpoint still answers", async () => {
    const ep = await endpoint();
    const raw = await rawStreamClient(ep.port);
    const over = new Uint8Array(MAX_QUIC_REQUEST_BYTES + 1).fill(0x41);
    const err = await raw.exchange(over).then(() => null, (e: unknown) => e);
    expect(String(err)).toMatch(/tooLarge/);
    expect(ep.counters().refusedLimits).toBe(1);
    // Exactly the limit passes the size check (and then fails to decode).
    const atLimit = decodeEnvelope(await raw.exchange(new Uint8Array(MAX_QUIC_REQUEST_BYTES).fill(0x41)));
    expect(atLimit.status).toBe(Status.BAD_REQUEST);
    expect(ep.counters().refusedLimits).toBe(1);
    const ok = decodeEnvelope(await raw.exchange(encodeEnvelope({ id: 1n, method: METHOD.app.whoami })));
    expect(ok.status).toBe(Status.OK);
  });

  test("a handler that throws is answered INTERNAL without details", async () => {
    const ep = await endpoint();
    ep.router.add(
      "boom",
      open(() => {
        throw new Error("secret detail");
      }),
    );
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    const answer = await link.request("boom");
    expect(answer.status).toBe(Status.INTERNAL);
    expect(answer.error).toBe("boom failed");
    expect(ep.router.stats().failed).toEqual({ boom: 1 });
  });

  test("a request times out with the caller's timeout when the handler never answers", async () => {
    const ep = await endpoint();
    ep.router.add("slow", open((_payload, ctx) => new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve({ status: Status.OK })))));
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    expect(await rejection(link.request("slow", undefined, { timeoutMs: 200 }))).toMatch(/Timed out after 200 ms/);
    expect(await whoami(link)).toBeTruthy();
  });

  test("handlers see the link's address and that it is not pinned", async () => {
    const ep = await endpoint();
    let seen: unknown;
    ep.router.add(
      "ctx",
      open((_payload, ctx) => {
        seen = { ip: ctx.remote.ip, port: ctx.remote.port, transport: ctx.transport, trust: ctx.trust, id: ctx.connectionId };
        return { status: Status.OK, payload: new Uint8Array([1, 2, 3]) };
      }),
    );
    const c = await client();
    const link = await c.dial({ ip: "127.0.0.1", port: ep.port });
    expect(expectOk(await link.request("ctx"))).toEqual(new Uint8Array([1, 2, 3]));
    expect(seen).toEqual({ ip: "127.0.0.1", port: c.port, transport: "quic", trust: "untrusted", id: link.connectionId });
  });
});

describe("limits and lifecycle", () => {
  test("connections beyond the per-IP limit are refused and counted", async () => {
    const ep = await endpoint({ maxConnectionsPerIp: 2 });
    const c = await client();
    const a = await c.dial({ ip: "127.0.0.1", port: ep.port });
    const b = await c.dial({ ip: "127.0.0.1", port: ep.port });
    expect((await whoami(a)).ip).toBe("127.0.0.1");
    expect((await whoami(b)).ip).toBe("127.0.0.1");
    const third = await c.dial({ ip: "127.0.0.1", port: ep.port }).catch((err: Error) => err);
    if (!(third instanceof Error)) expect(await rejection(third.request(METHOD.app.whoami, undefined, { timeoutMs: 1000 }))).not.toBe("resolved");
    expect(ep.counters().refusedLimits).toBe(1);
    expect(ep.counters().activeConnections).toBe(2);
  });

  test("connections beyond the total limit are refused; a freed slot is usable again", async () => {
    const ep = await endpoint({ maxConnections: 1 });
    const c = await client();
    const a = await c.dial({ ip: "127.0.0.1", port: ep.port });
    await whoami(a);
    const b = await c.dial({ ip: "127.0.0.1", port: ep.port }).catch((err: Error) => err);
    if (!(b instanceof Error)) expect(await rejection(b.request(METHOD.app.whoami, undefined, { timeoutMs: 1000 }))).not.toBe("resolved");
    expect(ep.counters().refusedLimits).toBe(1);
    const closed = new Promise<void>((resolve) => ep.on("close", () => resolve()));
    await a.close();
    await closed;
    const again = await c.dial({ ip: "127.0.0.1", port: ep.port });
    expect((await whoami(again)).port).toBe(c.port);
  });

  test("connect and close events carry the remote address", async () => {
    const ep = await endpoint();
    const events: string[] = [];
    ep.on("connect", (l) => events.push(`connect ${l.direction} ${l.remote.ip}`));
    const closed = new Promise<void>((resolve) => ep.on("close", (l) => (events.push(`close ${l.direction} ${l.remote.ip}`), resolve())));
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    await whoami(link);
    await link.close();
    await closed;
    expect(events).toEqual(["connect in 127.0.0.1", "close in 127.0.0.1"]);
  });

  test("an idle connection is closed after the idle timeout; keep-alives hold a live one open", async () => {
    const ep = await endpoint({ idleTimeoutMs: 600 });
    // This client's keep-alive (10 s) is longer than the negotiated idle timeout (600 ms): it idles out.
    const lazy = await (await client("127.0.0.1", { idleTimeoutMs: 30_000 })).dial({ ip: "127.0.0.1", port: ep.port });
    // This one pings every 200 ms.
    const alive = await (await client("127.0.0.1", { idleTimeoutMs: 600 })).dial({ ip: "127.0.0.1", port: ep.port });
    await until(() => lazy.closed, { what: "the idle connection closed", timeoutMs: 3000 });
    await Bun.sleep(700); // asserts the live one outlives one more idle timeout (600 ms)
    expect(alive.closed).toBe(false);
    expect((await whoami(alive)).ip).toBe("127.0.0.1");
  });

  test("start and stop are idempotent and the endpoint restarts on the same object", async () => {
    const ep = await endpoint();
    await ep.start();
    const port = ep.port;
    await Promise.all([ep.stop(), ep.stop()]);
    await ep.stop();
    expect(await rejection(ep.sendRaw(new Uint8Array([0]), 9, "127.0.0.1"))).toMatch(/not running/);
    await ep.start();
    expect(ep.port).not.toBe(0);
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    expect((await whoami(link)).ip).toBe("127.0.0.1");
    expect(port).toBeGreaterThan(0);
  });

  test("requests pending or sent after the endpoint stops fail with a PeerError", async () => {
    const ep = await endpoint();
    let arrived = false;
    ep.router.add("slow", open((_payload, ctx) => ((arrived = true), new Promise((resolve) => ctx.signal.addEventListener("abort", () => resolve({ status: Status.OK }))))));
    const link = await (await client()).dial({ ip: "127.0.0.1", port: ep.port });
    const pending = link.request("slow").then(
      () => null,
      (e: unknown) => e,
    );
    await until(() => arrived, { what: "the request at the endpoint" });
    await ep.stop();
    const err = await pending;
    expect(err).toBeInstanceOf(PeerError);
    await until(() => link.closed, { what: "the link closed", timeoutMs: 3000 });
    expect(await rejection(link.request(METHOD.app.whoami))).toMatch(/PeerError: Cannot send app.whoami to 127.0.0.1:\d+: the link is closed/);
  });

  test("dialling a port where nothing listens fails with a timeout", async () => {
    const c = await client();
    const spare = createSocket("udp4");
    await new Promise<void>((r) => spare.bind(0, "127.0.0.1", r));
    const port = spare.address().port;
    spare.close();
    expect(await rejection(c.dial({ ip: "127.0.0.1", port }, { timeoutMs: 300 }))).toMatch(/Timed out|Cannot connect/);
  });
});

/** A QUIC v1 long-header Initial (RFC 9000 §17.2.2) with random ids, token and payload: gets past the
 *  header parser into quiche's Initial handling (stateless retry, token check). */
function fakeInitial(): Uint8Array {
  const buf = crypto.getRandomValues(new Uint8Array(1200));
  buf[0] = 0xc0 | (buf[0]! & 0x0f);
  buf.set([0, 0, 0, 1], 1);
  buf[5] = 8 + (buf[5]! % 13); // dcid length 8..20
  buf[6 + buf[5]!] = buf[6 + buf[5]!]! % 21; // scid length 0..20
  return buf;
}

describe("raw datagrams on the shared socket", () => {
  test("thousands of random datagrams: non-QUIC ones reach onRawDatagram, QUIC still works", async () => {
    const raw: Array<{ kind: string; port: number; family: string }> = [];
    const ep = await endpoint({ onRawDatagram: (_buf, rinfo, kind) => raw.push({ kind, port: rinfo.port, family: rinfo.family }) });
    const sender = createSocket("udp4");
    await new Promise<void>((r) => sender.bind(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => sender.close(() => r())));
    const COUNT = 4000;
    let expectRaw = 0;
    let expectUnknown = 0;
    let expectQuic = 0;
    for (let i = 0; i < COUNT; i++) {
      const buf = i % 20 === 0 ? fakeInitial() : crypto.getRandomValues(new Uint8Array(1 + Math.floor(Math.random() * 1200)));
      if (i % 2 === 0) buf[0]! |= 0x40;
      else buf[0]! &= ~0x40;
      const kind = classifyDatagram(buf);
      if (kind === "stun" || kind === "sn") expectRaw++;
      else if (kind === "unknown") expectUnknown++;
      else expectQuic++;
      sender.send(buf, ep.port, "127.0.0.1");
      // Pace a little so the loopback receive buffer does not drop datagrams (the test counts them exactly).
      if (i % 40 === 39) await Bun.sleep(2); // pacing, not waiting
    }
    const seen = () => ep.counters().rawDatagrams + ep.counters().unknownDatagrams + ep.counters().quicDatagrams + ep.counters().droppedInitials;
    await until(() => seen() >= COUNT, { what: `all ${COUNT} datagrams counted`, timeoutMs: 5000 });
    expect(expectQuic).toBe(COUNT / 2);
    expect(ep.counters().quicDatagrams + ep.counters().droppedInitials).toBe(expectQuic);
    expect(raw.length).toBe(expectRaw);
    expect(ep.counters().unknownDatagrams).toBe(expectUnknown);
    expect(raw.every((r) => r.port === sender.address().port && r.family === "IPv4")).toBe(true);
    expect(ep.counters().datagramErrors).toBe(0);
    const r = await quicWhoami({ ip: "127.0.0.1", port: ep.port });
    expect(r.ip).toBe("127.0.0.1");
  }, 20_000);

  test("sendRaw sends from the shared socket's port", async () => {
    const ep = await endpoint();
    const receiver = createSocket("udp4");
    await new Promise<void>((r) => receiver.bind(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => receiver.close(() => r())));
    const got = new Promise<{ data: Buffer; port: number }>((resolve) => receiver.once("message", (data, rinfo) => resolve({ data, port: rinfo.port })));
    const bytes = new Uint8Array([0x00, 0x01, 0x02, 0x03]);
    await ep.sendRaw(bytes, receiver.address().port, "127.0.0.1");
    bytes.fill(9); // sendRaw copied the bytes; reusing the buffer must not change what was sent
    const { data, port } = await got;
    expect([...data]).toEqual([0, 1, 2, 3]);
    expect(port).toBe(ep.port);
  });

  test("a dual-stack endpoint sends raw datagrams to plain IPv4 targets", async () => {
    const ep = await endpoint({ host: "::" });
    const receiver = createSocket("udp4");
    await new Promise<void>((r) => receiver.bind(0, "127.0.0.1", r));
    cleanups.push(() => new Promise<void>((r) => receiver.close(() => r())));
    const got = new Promise<number>((resolve) => receiver.once("message", (_d, rinfo) => resolve(rinfo.port)));
    await ep.sendRaw(new Uint8Array([0, 1]), receiver.address().port, "127.0.0.1");
    expect(await got).toBe(ep.port);
  });

  test("outgoing dials leave from the endpoint's own port", async () => {
    const a = await endpoint();
    const b = await endpoint();
    const link = await a.dial({ ip: "127.0.0.1", port: b.port });
    expect((await whoami(link)).port).toBe(a.port);
    // And b can ask a over the same connection, in the other direction.
    const back = b.links()[0]!;
    expect(back.direction).toBe("in");
    expect((await whoami(back)).port).toBe(b.port);
  });
});


describe("stop", () => {
  test("a stopped endpoint and client leave no open handle: the process exits by itself", async () => {
    const src = join(import.meta.dir, "..", "..", "..", "src");
    using dir = tempDir();
    const script = join(dir.path, "run.ts");
    await Bun.write(
      script,
      `
      import { createRunCertificate } from ${JSON.stringify(join(src, "identity/certificate.ts"))};
      import { generateNodeKey } from ${JSON.stringify(join(src, "identity/node-key.ts"))};
      import { createUdpEndpoint } from ${JSON.stringify(join(src, "transport/udp/endpoint.ts"))};
      import { createUdpClient } from ${JSON.stringify(join(src, "transport/udp/client.ts"))};
      import { bootstrapApp } from ${JSON.stringify(join(src, "transport/app-bootstrap/bootstrap.ts"))};
      import { quicWhoami } from ${JSON.stringify(join(src, "transport/quic/whoami.ts"))};
      import { METHOD } from ${JSON.stringify(join(src, "rpc/methods.ts"))};
      const nodeKey = generateNodeKey();
      const ep = createUdpEndpoint({ cert: await createRunCertificate(), nodeKey }, { host: "127.0.0.1", port: 0 });
      await ep.start();
      const c = createUdpClient({}, { host: "127.0.0.1" });
      await c.start();
      const { link } = await bootstrapApp(c, { addr: { ip: "127.0.0.1", port: ep.port }, nodePublicKey: nodeKey.publicKey }, { appKey: generateNodeKey() });
      await link.request(METHOD.app.whoami);
      const pending = link.request(METHOD.app.whoami); // in flight while we stop
      await quicWhoami({ ip: "127.0.0.1", port: ep.port });
      await ep.stop();
      await c.stop();
      await pending.catch(() => {});
      console.log("stopped");
      `,
    );
    const proc = Bun.spawn([process.execPath, script], { stdout: "pipe", stderr: "pipe" });
    const killer = setTimeout(() => proc.kill(), 10_000);
    const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
    clearTimeout(killer);
    expect(err).toBe("");
    expect(out.trim()).toBe("stopped");
    expect(code).toBe(0);
  }, 15_000);
});
