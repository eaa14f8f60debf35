// The client library and the TCP pipe on loopback, against a real `findings serve`: two FindingsClients in
// this process join one pool; one exposes an HTTP server, the other forwards a local port to it. HTTP through
// the pipe, a 50 MiB transfer checked byte for byte, many parallel connections through one link, a
// refused target, and that a peer cannot open anything but pipe streams.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { connect, createServer, type Server } from "node:net";
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { FindingsClient, PIPE_PROTOCOL, expose, forward, type Forwarder, type Membership, type PipeConnection } from "../../src/client/index.ts";
import { startServe, tempDir, type ServeProcess } from "../helpers.ts";
import { rejection, until } from "../wait.ts";

const home = tempDir("findings-pipe-");
const KIND = "app:chat";
let node: ServeProcess;
let a: FindingsClient;
let b: FindingsClient;
let exposer: Membership;
let forwarder: Membership;
let fwd: Forwarder;
let http: ReturnType<typeof Bun.serve>;
let sink: Server;
let sinkPort = 0;
const exposed: PipeConnection[] = [];
const forwarded: PipeConnection[] = [];

/** A TCP service that answers every connection with the SHA-256 of what it read, after the client's FIN. */
function startSink(): Promise<number> {
  sink = createServer({ allowHalfOpen: true }, (s) => {
    const h = createHash("sha256");
    s.on("data", (d) => h.update(d));
    s.on("end", () => s.end(h.digest("hex")));
  });
  return new Promise((r) => sink.listen(0, "127.0.0.1", () => r((sink.address() as { port: number }).port)));
}

beforeAll(async () => {
  const dir = join(home.path, "node");
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "config.toml"), `[stakes]\n"${KIND}" = ""\n"app:sink" = ""\n`);
  node = await startServe(["--home", dir, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"]);
  const server = `127.0.0.1:${node.ready.udpPort}#${node.ready.publicKey}`;
  a = new FindingsClient({ server, nat: "public", host: "127.0.0.1" });
  b = new FindingsClient({ server, nat: "public", host: "127.0.0.1" });
  http = Bun.serve({ hostname: "127.0.0.1", port: 0, fetch: (req) => new Response(`hello ${new URL(req.url).pathname}`) });
  sinkPort = await startSink();
  exposer = await a.join(KIND);
  expose(exposer, { host: "127.0.0.1", port: http.port! }, { onConnection: (c) => exposed.push(c) });
  forwarder = await b.join(KIND);
  await forwarder.punch(a.id);
  fwd = await forward(forwarder, a.id, { host: "127.0.0.1", port: 0 }, { onConnection: (c) => forwarded.push(c) });
}, 30_000);

afterAll(async () => {
  await fwd?.close();
  await Promise.allSettled([a?.close(), b?.close()]);
  http?.stop(true);
  sink?.close();
  await node?.stop();
  home[Symbol.dispose]();
});

describe("FindingsClient and the TCP pipe on loopback", () => {
  test("an HTTP request through --forward reaches the exposed server; each connection is reported at both ends", async () => {
    const res = await fetch(`http://${fwd.address}/through/the/hole`, { headers: { connection: "close" } });
    expect(await res.text()).toBe("hello /through/the/hole");
    await until(() => exposed.length >= 1 && forwarded.length >= 1, { what: "both reports" });
    expect(forwarded[0]).toMatchObject({ pipe: "forward", peer: a.id, ok: true });
    expect(exposed[0]).toMatchObject({ pipe: "expose", peer: b.id, to: `127.0.0.1:${http.port}`, ok: true });
    expect(forwarded[0]!.bytesDown).toBeGreaterThan(0);
  });

  test("the exposing side takes pipe streams only: another protocol is reset, and a refused target is reported", async () => {
    const toExposer = forwarder.connection(a.id)!;
    const shell = await toExposer.openStream("shell");
    expect(await rejection(shell.readable.getReader().read())).toMatch(/reset/);
    // The exposed service refuses: the stream is reset and the connection reported as failed.
    const closed = createServer();
    const deadPort = await new Promise<number>((r) => closed.listen(0, "127.0.0.1", () => r((closed.address() as { port: number }).port)));
    closed.close();
    const reports: PipeConnection[] = [];
    const off = expose(exposer, { host: "127.0.0.1", port: deadPort }, { onConnection: (r) => reports.push(r) });
    const s = await toExposer.openStream(PIPE_PROTOCOL);
    expect(await rejection(s.readable.getReader().read())).toMatch(/reset/);
    await until(() => reports.length === 1, { what: "the failed connection's report" });
    expect(reports[0]).toMatchObject({ pipe: "expose", ok: false, error: expect.stringMatching(/cannot connect to 127\.0\.0\.1:/) });
    off.stop();
    // Back to the HTTP server for the tests that follow (a connection has one stream handler: the newest).
    expose(exposer, { host: "127.0.0.1", port: http.port! }, { onConnection: (c) => exposed.push(c) });
  });

  test("the library alone: a stream each way, FIN both ways", async () => {
    const conn = exposer.connection(b.id)!;
    expect(conn).toBeDefined();
    const back = forwarder.connection(a.id)!;
    const got = new Promise<string>((resolve) => {
      back.onStream(async (s) => {
        const text = await new Response(s.readable).text();
        const w = s.writable.getWriter();
        await w.write(new TextEncoder().encode(`echo ${s.protocol}: ${text}`));
        await w.close();
        resolve(text);
      });
    });
    const s = await conn.openStream("chat");
    const w = s.writable.getWriter();
    await w.write(new TextEncoder().encode("hi"));
    await w.close();
    expect(await new Response(s.readable).text()).toBe("echo chat: hi");
    expect(await got).toBe("hi");
  });
});

/** Sends `bytes` through a fresh forward to the sink, returns the sink's digest. */
async function throughPipe(port: number, bytes: Uint8Array): Promise<string> {
  const s = connect({ host: "127.0.0.1", port, allowHalfOpen: true });
  const chunks: Buffer[] = [];
  s.on("data", (d: Buffer) => chunks.push(d));
  const done = new Promise<void>((r) => s.on("end", () => r()));
  await new Promise<void>((r) => s.once("connect", () => r()));
  s.end(bytes);
  await done;
  s.destroy();
  return Buffer.concat(chunks).toString();
}

describe("the pipe under load", () => {
  let sinkExposer: Membership;
  let sinkFwd: Forwarder;
  let c: FindingsClient;
  let d: FindingsClient;
  beforeAll(async () => {
    const server = `127.0.0.1:${node.ready.udpPort}#${node.ready.publicKey}`;
    c = new FindingsClient({ server, nat: "public", host: "127.0.0.1" });
    d = new FindingsClient({ server, nat: "public", host: "127.0.0.1" });
    sinkExposer = await c.join("app:sink");
    expose(sinkExposer, { host: "127.0.0.1", port: sinkPort });
    sinkFwd = await forward(await d.join("app:sink"), c.id, { host: "127.0.0.1", port: 0 });
  }, 30_000);
  afterAll(async () => {
    await sinkFwd?.close();
    await Promise.allSettled([c?.close(), d?.close()]);
  });

  test("50 MiB arrive byte for byte", async () => {
    const big = new Uint8Array(50 * 1024 * 1024);
    for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
    const want = createHash("sha256").update(big).digest("hex");
    expect(await throughPipe(sinkFwd.port, big)).toBe(want);
  }, 120_000);

  test("100 parallel TCP connections share one link; every one arrives intact", async () => {
    const runs = Array.from({ length: 100 }, (_, i) => {
      const bytes = crypto.getRandomValues(new Uint8Array(20_000 + i * 100));
      return throughPipe(sinkFwd.port, bytes).then((got) => expect(got).toBe(createHash("sha256").update(bytes).digest("hex")));
    });
    await Promise.all(runs);
  }, 60_000);
});
