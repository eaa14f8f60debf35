// `findings serve` as a user runs it: whoami over QUIC and HTTPS (IPv4 and IPv6), a real STUN client,
// a real HTTP/2 client, garbage on both ports, and a clean exit on SIGINT/SIGTERM.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { connect as tcpConnect } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, startServe, tempDir, type ServeProcess } from "../helpers.ts";
import { until, within } from "../wait.ts";

const home = tempDir("findings-serve-");
let v4: ServeProcess;
let v6: ServeProcess;

beforeAll(async () => {
  const started = await Promise.allSettled([
    startServe(["--home", join(home.path, "v4"), "--host", "127.0.0.1", "--port", "0", "--admin", "127.0.0.1:0", "--public"]),
    startServe(["--home", join(home.path, "v6"), "--host", "::", "--port", "0", "--admin", "", "--public"]),
  ]);
  const failed = started.find((r) => r.status === "rejected");
  if (failed) {
    // Leave no node behind when the other one could not start.
    await Promise.all(started.map((r) => (r.status === "fulfilled" ? r.value.stop() : undefined)));
    throw (failed as PromiseRejectedResult).reason;
  }
  [v4, v6] = started.map((r) => (r as PromiseFulfilledResult<ServeProcess>).value) as [ServeProcess, ServeProcess];
});

afterAll(async () => {
  await Promise.all([v4?.stop(), v6?.stop()]);
  home[Symbol.dispose]();
});

/** The client's home (its known-hosts file), apart from the nodes'. */
const clientHome = () => join(home.path, `client-${Math.random().toString(36).slice(2)}`);

async function whoami(args: string[]) {
  const r = await runCli(["whoami", "--json", "--home", clientHome(), ...args]);
  if (r.code !== 0) throw new Error(`whoami failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as { address: string; via: string; server: string; rttMs: number; pinned: boolean; keySource?: string };
}

describe("findings whoami against a running node", () => {
  test("over QUIC on IPv4 with an address only: the key is learned on first use and pinned", async () => {
    const r = await whoami(["--server", `127.0.0.1:${v4.ready.udpPort}`]);
    expect(r).toMatchObject({ via: "quic", server: `127.0.0.1:${v4.ready.udpPort}`, pinned: true, keySource: "learned" });
    expect(r.address).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(r.rttMs).toBeGreaterThan(0);
  });

  test("over QUIC with the node's key: bootstrapped and pinned", async () => {
    const r = await whoami(["--server", `127.0.0.1:${v4.ready.udpPort}#${v4.ready.publicKey}`]);
    expect(r).toMatchObject({ via: "quic", pinned: true });
  });

  test("with a wrong key the bootstrap fails with one clear line", async () => {
    const r = await runCli(["whoami", "--home", clientHome(), "--server", `127.0.0.1:${v4.ready.udpPort}#${"ab".repeat(32)}`]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toMatch(/^findings: /);
  });

  test("over HTTPS with --tcp", async () => {
    const r = await whoami(["--server", `127.0.0.1:${v4.ready.tcpPort}`, "--tcp"]);
    expect(r).toMatchObject({ via: "https" });
    expect(r.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });

  test("over QUIC and HTTPS on IPv6 loopback", async () => {
    const q = await whoami(["--server", `[::1]:${v6.ready.udpPort}#${v6.ready.publicKey}`]);
    expect(q.address).toMatch(/^\[::1\]:\d+$/);
    expect(q.pinned).toBe(true);
    const h = await whoami(["--server", `[::1]:${v6.ready.tcpPort}`, "--tcp"]);
    expect(h.address).toMatch(/^\[::1\]:\d+$/);
  });

  test("a dual-stack node reports IPv4 clients as IPv4", async () => {
    const q = await whoami(["--server", `127.0.0.1:${v6.ready.udpPort}`]);
    expect(q.address).toMatch(/^127\.0\.0\.1:\d+$/);
  });
});

describe("real clients", () => {
  test("curl negotiates HTTP/2 for /whoami", async () => {
    const p = Bun.spawn(["curl", "-gsk", "--http2", "-w", "\n%{http_version}", `https://[::1]:${v6.ready.tcpPort}/whoami`], { stdout: "pipe" });
    const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    const lines = out.trim().split("\n").filter(Boolean);
    const body = lines[0];
    const version = lines.at(-1);
    expect(version).toBe("2");
    expect(JSON.parse(body!)).toMatchObject({ via: "https", ip: "::1" });
  });

  test("a classic STUN client gets its address from the node's UDP port", async () => {
    const p = Bun.spawn(["turnutils_stunclient", "-p", String(v4.ready.udpPort), "127.0.0.1"], { stdout: "pipe", stderr: "pipe" });
    const [out] = await Promise.all([new Response(p.stdout).text(), p.exited]);
    expect(out).toMatch(/UDP reflexive addr: 127\.0\.0\.1:\d+/);
  });
});

describe("hostile input", () => {
  test("thousands of random datagrams and junk on the TLS port leave the node answering", async () => {
    const sock = createSocket("udp4");
    for (let i = 0; i < 5000; i++) {
      const junk = crypto.getRandomValues(new Uint8Array(1 + (i % 1300)));
      if (i % 2) junk[0]! |= 0x40; // half look like QUIC
      else junk[0]! &= 0x3f; // half look like STUN/SN
      sock.send(junk, v4.ready.udpPort, "127.0.0.1");
      if (i % 500 === 0) await Bun.sleep(5); // pacing, not waiting
    }
    await new Promise<void>((r) => sock.close(() => r()));

    // Raw junk on TCP, a TLS client that stalls mid-handshake, and a truncated WebSocket frame.
    const junkTcp = tcpConnect(v4.ready.tcpPort, "127.0.0.1", () => junkTcp.end(crypto.getRandomValues(new Uint8Array(4096))));
    junkTcp.on("error", () => {});
    const stalled = tcpConnect(v4.ready.tcpPort, "127.0.0.1", () => stalled.write(new Uint8Array([0x16, 0x03, 0x01, 0x02, 0x00, 0x01])));
    stalled.on("error", () => {});
    const ws = tlsConnect({ host: "127.0.0.1", port: v4.ready.tcpPort, rejectUnauthorized: false, ALPNProtocols: ["http/1.1"] }, () => {
      ws.write(
        "GET /mesh HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
      );
      setTimeout(() => ws.end(new Uint8Array([0x82, 0xfe, 0xff])), 100); // binary frame, 16-bit length, cut short
    });
    ws.on("error", () => {});
    const wsSent = new Promise((r) => ws.once("finish", r));
    const counted = async () => {
      const c = (await (await fetch(`${v4.ready.admin}/status`)).json()).counters;
      return c.udp_unknownDatagrams + c.udp_rawDatagrams + c.udp_quicDatagrams > 2000;
    };
    await until(counted, { what: "the junk datagrams counted", timeoutMs: 10_000 });
    await within(wsSent, { what: "the cut WebSocket frame sent", timeoutMs: 10_000 });

    const r = await whoami(["--server", `127.0.0.1:${v4.ready.udpPort}`]);
    expect(r.via).toBe("quic");
    const h = await whoami(["--server", `127.0.0.1:${v4.ready.tcpPort}`, "--tcp"]);
    expect(h.via).toBe("https");
    expect(v4.proc.exitCode).toBeNull();
    stalled.destroy();
    const status = await (await fetch(`${v4.ready.admin}/status`)).json();
    expect(status.counters.udp_unknownDatagrams + status.counters.udp_rawDatagrams + status.counters.udp_quicDatagrams).toBeGreaterThan(2000);
  }, 60_000);
});

describe("lifecycle", () => {
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    test(`exits 0 on ${signal} with the log flushed`, async () => {
      using h = tempDir();
      const node = await startServe(["--home", h.path, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"]);
      expect(await node.stop(signal)).toBe(0);
      const logs = readdirSync(join(h.path, "logs"));
      const text = readFileSync(join(h.path, "logs", logs[0]!), "utf8");
      expect(text).toContain('"msg":"node stopped"');
    });
  }

  test("a port already in use fails with one line and a non-zero exit", async () => {
    using h = tempDir();
    const r = await runCli(["serve", "--home", h.path, "--host", "127.0.0.1", "--udp-port", String(v4.ready.udpPort), "--tcp-port", "0", "--admin", ""]);
    expect(r.code).not.toBe(0);
    expect(r.stderr.trim().split("\n").at(-1)).toMatch(/^findings: /);
  });

  test("a bad flag value names the flag", async () => {
    using h = tempDir();
    const r = await runCli(["serve", "--home", h.path, "--port", "seventy"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("--port");
  });
});
