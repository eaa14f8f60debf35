// The TCP pipe and the client library through real kernel NATs (DESIGN §10): an HTTP server behind one NAT,
// `findings punch --wait --expose` next to it, `findings punch ID --forward` behind another NAT, and curl
// through the forward. A cone ↔ cone pair (port-restricted ← full cone) and a symmetric ↔ cone pair
// (restricted cone ← symmetric, sym-to-restricted); a 50 MiB download checked byte for byte; many parallel
// connections through one link; the example app (examples/file-copy) across two NATs. Skips with the
// reason when namespaces cannot be built here.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { BUN, labDown, labUnavailableReason, type LabClass } from "./lab.ts";
import { holdLabLock } from "./lab-lock.ts";
import { appHome, labUpUnshared, MAIN, NAT_OF, NS_OF, PUNCH_KIND, removeAppHomes, resetRestrictedConeSeen, spawnLines, startPunchNode, type LineProc, type PunchNode } from "../../scripts/bench/punch-lab.ts";

const unavailable = labUnavailableReason();
if (unavailable) console.warn(`SKIPPED: the NAT lab cannot run here: ${unavailable}`);
const releaseLab = unavailable === null ? await holdLabLock() : async () => {};
afterAll(releaseLab);

/** Ports inside the exposing namespaces (each namespace has its own loopback). */
const HTTP_PORT = 18080;
const OTHER_PORT = 18081;
const NODE_PORT = 7792;
const BIG_BYTES = 50 * 1024 * 1024;
const COPY = resolve(import.meta.dir, "../../examples/file-copy/copy.ts");

const work = mkdtempSync(join(tmpdir(), "findings-pipe-lab-"));
const BIG = join(work, "big.bin");

function inNs(cls: LabClass, cmd: string[], timeoutMs = 60_000): { code: number; out: string; err: string } {
  const r = Bun.spawnSync(["ip", "netns", "exec", NS_OF[cls], ...cmd], { stdout: "pipe", stderr: "pipe", timeout: timeoutMs });
  return { code: r.exitCode ?? 1, out: r.stdout.toString(), err: r.stderr.toString() };
}

/** curl inside a namespace, in a child so this process's event loop stays free for the pipes' output. */
async function curl(cls: LabClass, url: string, extra: string[] = []): Promise<{ code: number; out: string; err: string }> {
  const p = Bun.spawn(["ip", "netns", "exec", NS_OF[cls], "curl", "-sS", "--max-time", "100", ...extra, url], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, out, err };
}

interface Pair {
  http: LineProc;
  exposer: LineProc & { id: string; hello: Record<string, unknown> };
  forwarder: LineProc;
  port: number;
  stop(): Promise<void>;
}

/** `findings punch --wait --expose` in the namespace of `cls` and its hello line. */
async function startExposer(node: PunchNode, cls: LabClass, opts: { port?: number; name?: string } = {}): Promise<LineProc & { id: string; hello: Record<string, unknown> }> {
  const args = ["punch", "--wait", "--expose", `127.0.0.1:${HTTP_PORT}`, "--json", "--server", node.server, "--kind", PUNCH_KIND, "--nat", NAT_OF[cls], "--home", appHome(opts.name ?? `expose-${cls}`)];
  if (opts.port) args.push("--port", String(opts.port));
  const p = spawnLines(["ip", "netns", "exec", NS_OF[cls], BUN, MAIN, ...args]);
  try {
    const hello = await p.next((o) => o.waiting === true, 20_000);
    expect(hello.expose).toBe(`127.0.0.1:${HTTP_PORT}`);
    return { ...p, id: hello.id as string, hello };
  } catch (err) {
    await p.stop("SIGKILL");
    throw err;
  }
}

async function startPair(node: PunchNode, exposeCls: LabClass, forwardCls: LabClass, opts: { port?: number; name?: string } = {}): Promise<Pair> {
  const started: LineProc[] = [];
  try {
    const serve = `Bun.serve({ hostname: "127.0.0.1", port: ${HTTP_PORT}, fetch(r) { const p = new URL(r.url).pathname; return p === "/big" ? new Response(Bun.file(${JSON.stringify(BIG)})) : new Response("hello " + p); } });
Bun.serve({ hostname: "127.0.0.1", port: ${OTHER_PORT}, fetch: () => new Response("not exposed") }); console.log(JSON.stringify({ up: true }));`;
    const http = spawnLines(["ip", "netns", "exec", NS_OF[exposeCls], BUN, "-e", serve]);
    started.push(http);
    await http.next((o) => o.up === true, 10_000);
    const common = ["--json", "--server", node.server, "--kind", PUNCH_KIND];
    const exposer = await startExposer(node, exposeCls, opts);
    started.push(exposer);
    const hello = exposer.hello;
    const forwarder = spawnLines(["ip", "netns", "exec", NS_OF[forwardCls], BUN, MAIN, "punch", hello.id as string, "--forward", "0", ...common, "--nat", NAT_OF[forwardCls], "--home", appHome(`forward-${forwardCls}`)]);
    started.push(forwarder);
    const result = await forwarder.next((o) => "connected" in o, 30_000);
    expect(result).toMatchObject({ connected: true });
    const listening = await forwarder.next((o) => o.forwarding === true, 10_000);
    expect(String(listening.listen)).toMatch(/^127\.0\.0\.1:\d+$/);
    return {
      http,
      exposer,
      forwarder,
      port: Number(String(listening.listen).split(":")[1]),
      async stop() {
        await Promise.all(started.map((p) => p.stop()));
      },
    };
  } catch (err) {
    await Promise.all(started.map((p) => p.stop("SIGKILL")));
    throw err;
  }
}

describe.skipIf(unavailable !== null)("the TCP pipe through the NAT lab", () => {
  let wasUp = false;
  let node: PunchNode;
  let bigSha = "";
  const pairs: Pair[] = [];

  beforeAll(async () => {
    wasUp = labUpUnshared();
    resetRestrictedConeSeen();
    const big = new Uint8Array(BIG_BYTES);
    for (let i = 0; i < big.length; i += 65536) crypto.getRandomValues(big.subarray(i, i + 65536));
    writeFileSync(BIG, big);
    bigSha = createHash("sha256").update(big).digest("hex");
    node = await startPunchNode({ port: NODE_PORT });
  }, 60_000);

  afterAll(async () => {
    await Promise.all(pairs.map((p) => p.stop()));
    await node?.stop();
    removeAppHomes();
    rmSync(work, { recursive: true, force: true });
    if (!wasUp) labDown();
  }, 30_000);

  test("cone ↔ cone: curl through --forward (behind a full cone) reaches the HTTP server behind a port-restricted cone; one line per connection at both ends", async () => {
    const pair = await startPair(node, "prc", "fullc");
    pairs.push(pair);
    const r = await curl("fullc", `http://127.0.0.1:${pair.port}/through/the/hole`);
    expect(r.out, r.err).toBe("hello /through/the/hole");
    const fwd = await pair.forwarder.next((o) => o.pipe === "forward" && o.ok === true);
    expect(fwd).toMatchObject({ peer: pair.exposer.id, bytesDown: expect.any(Number) });
    const exp = await pair.exposer.next((o) => o.pipe === "expose" && o.ok === true);
    expect(exp).toMatchObject({ to: `127.0.0.1:${HTTP_PORT}` });
    // The pipe names no target: whatever the forwarding side sends lands on the exposed port, never on the
    // exposing machine's other service (OTHER_PORT).
    const other = await curl("fullc", `http://127.0.0.1:${pair.port}/`);
    expect(other.out).toBe("hello /");
  }, 90_000);

  test("64 parallel curls share the one punched link; every answer is right", async () => {
    const pair = pairs[0]!;
    const runs = await Promise.all(Array.from({ length: 64 }, (_, i) => curl("fullc", `http://127.0.0.1:${pair.port}/n${i}`)));
    runs.forEach((r, i) => expect(r.out, r.err).toBe(`hello /n${i}`));
  }, 90_000);

  test("symmetric ↔ cone: curl from behind a symmetric NAT to the server behind a restricted cone; 50 MiB arrive byte for byte", async () => {
    const pair = await startPair(node, "rc", "sym");
    pairs.push(pair);
    const hello = await curl("sym", `http://127.0.0.1:${pair.port}/sym`);
    expect(hello.out, hello.err).toBe("hello /sym");
    const out = join(work, "big.out");
    const r = await curl("sym", `http://127.0.0.1:${pair.port}/big`, ["-o", out]);
    expect(r.code, r.err).toBe(0);
    const got = readFileSync(out);
    expect(got.length).toBe(BIG_BYTES);
    expect(createHash("sha256").update(got).digest("hex")).toBe(bigSha);
  }, 180_000);

  test("a re-mapping: the exposing app restarts on a new port; the forward follows the node's re-offer and curl works again", async () => {
    // The first pair's HTTP server holds the port in fl-c-prc.
    await pairs.shift()!.stop();
    resetRestrictedConeSeen();
    const pair = await startPair(node, "prc", "rc", { port: 40_111, name: "moving" });
    pairs.push(pair);
    expect((await curl("rc", `http://127.0.0.1:${pair.port}/before`)).out).toBe("hello /before");
    await pair.exposer.stop("SIGKILL");
    const seen = pair.forwarder.lines.length;
    const again = await startExposer(node, "prc", { port: 40_112, name: "moving" });
    pairs.push({ ...pair, stop: async () => void (await again.stop()) });
    expect(again.id).toBe(pair.exposer.id);
    expect(again.hello.address).not.toBe(pair.exposer.hello.address);
    const re = await pair.forwarder.next((o) => o.connected === true, 15_000, seen);
    expect(re).toMatchObject({ peerId: again.id, peer: expect.stringMatching(/^203\.0\.113\.103:\d+$/) });
    const r = await curl("rc", `http://127.0.0.1:${pair.port}/after`);
    expect(r.out, r.err).toBe("hello /after");
  }, 90_000);

  test("the example app (examples/file-copy) copies a file from behind a port-restricted cone to behind a full cone", async () => {
    const src = join(work, "copy-src.bin");
    const dst = join(work, "copy-dst.bin");
    writeFileSync(src, crypto.getRandomValues(new Uint8Array(60_000)));
    const sender = spawnLines(["ip", "netns", "exec", NS_OF.prc, BUN, COPY, "send", src, "--server", node.server, "--nat", NAT_OF.prc]);
    try {
      const hello = await sender.next((o) => typeof o.id === "string", 20_000);
      const r = inNs("fullc", [BUN, COPY, "receive", hello.id as string, dst, "--server", node.server, "--nat", NAT_OF.fullc]);
      expect(r.code, r.err).toBe(0);
      const want = createHash("sha256").update(readFileSync(src)).digest("hex");
      expect(JSON.parse(r.out)).toMatchObject({ bytes: 60_000, sha256: want });
    } finally {
      await sender.stop();
    }
  }, 90_000);
});
