// Our Binding responder answers real STUN clients from Debian (coturn's RFC 5389 client, stun 0.97's RFC 3489 one).
// Needs `apt-get install coturn stun-client`; a missing client fails the test with that line rather than passing.
import { describe, expect, test } from "bun:test";
import dgram from "node:dgram";
import { createBindingResponder, type BindingResponder } from "../../src/stun/responder.ts";
import { classifyDatagram } from "../../src/transport/udp/classify.ts";

const CLIENT_TIMEOUT_MS = 10_000;

interface Source {
  address: string;
  port: number;
}

interface TestServer {
  port: number;
  seen: Source[];
  responder: BindingResponder;
  close(): Promise<void>;
}

/** A UDP server shaped like the node's: node:dgram socket → classifyDatagram → responder. */
async function startServer(type: "udp4" | "udp6", host: string): Promise<TestServer> {
  const socket = dgram.createSocket({ type });
  const responder = createBindingResponder(); // node:dgram reads the bytes after send(): no reuse
  const seen: Source[] = [];
  // ICMP port-unreachable from a client that already exited surfaces as ECONNREFUSED; without a listener
  // node:dgram throws it and takes the test process down.
  socket.on("error", () => {});
  socket.on("message", (msg, rinfo) => {
    if (classifyDatagram(msg) !== "stun") return;
    seen.push({ address: rinfo.address, port: rinfo.port });
    const family = rinfo.family === "IPv6" ? 6 : 4;
    responder.handle(msg, rinfo.address, rinfo.port, family, (bytes, port, ip) => socket.send(bytes, port, ip));
  });
  await new Promise<void>((resolve, reject) => {
    socket.once("error", reject);
    socket.bind(0, host, () => resolve());
  });
  return {
    port: socket.address().port,
    seen,
    responder,
    close: () => new Promise<void>((resolve) => socket.close(() => resolve())),
  };
}

async function run(argv: string[]): Promise<string> {
  const binary = Bun.which(argv[0]);
  if (binary === null) {
    throw new Error(`${argv[0]} is not installed: run apt-get install -y coturn stun-client`);
  }
  const child = Bun.spawn([binary, ...argv.slice(1)], {
    stdout: "pipe",
    stderr: "pipe",
    signal: AbortSignal.timeout(CLIENT_TIMEOUT_MS),
  });
  const [stdout, stderr] = await Promise.all([new Response(child.stdout).text(), new Response(child.stderr).text()]);
  await child.exited;
  return stdout + stderr;
}

/** "0: : IPv4. UDP reflexive addr: 127.0.0.1:49649" (also "::1:40760" for IPv6, unbracketed). */
function turnutilsMapped(output: string): Source {
  const match = /UDP reflexive addr: (\S+):(\d+)/.exec(output);
  if (match === null) throw new Error(`turnutils_stunclient printed no reflexive address:\n${output}`);
  return { address: match[1], port: Number(match[2]) };
}

const withoutV4Prefix = (ip: string) => (ip.startsWith("::ffff:") ? ip.slice(7) : ip);

async function ipv6LoopbackWorks(): Promise<boolean> {
  try {
    const server = await startServer("udp6", "::1");
    await server.close();
    return true;
  } catch {
    return false;
  }
}

const HAS_IPV6 = await ipv6LoopbackWorks();
if (!HAS_IPV6) console.warn("!!! IPv6 loopback ::1 unavailable here: the IPv6 real-client test is SKIPPED !!!");

describe("real STUN clients against our responder", () => {
  test("turnutils_stunclient (RFC 5389) over IPv4 prints the source address the server saw", async () => {
    const server = await startServer("udp4", "127.0.0.1");
    try {
      const output = await run(["turnutils_stunclient", "-p", String(server.port), "127.0.0.1"]);
      const mapped = turnutilsMapped(output);
      expect(output).toContain("IPv4");
      expect(server.seen).toContainEqual(mapped);
      expect(server.responder.answered).toBeGreaterThanOrEqual(1);
      expect(server.responder.malformed).toBe(0);
    } finally {
      await server.close();
    }
  });

  test.skipIf(!HAS_IPV6)("turnutils_stunclient over IPv6 [::1] prints the IPv6 source address", async () => {
    const server = await startServer("udp6", "::1");
    try {
      const output = await run(["turnutils_stunclient", "-p", String(server.port), "::1"]);
      const mapped = turnutilsMapped(output);
      expect(output).toContain("IPv6");
      expect(mapped.address).toBe("::1");
      expect(server.seen).toContainEqual(mapped);
    } finally {
      await server.close();
    }
  });

  test("an IPv4 client on a dual-stack socket (::ffff:127.0.0.1) is told its IPv4 address", async () => {
    const server = await startServer("udp6", "::ffff:127.0.0.1");
    try {
      const output = await run(["turnutils_stunclient", "-p", String(server.port), "127.0.0.1"]);
      const mapped = turnutilsMapped(output);
      expect(output).toContain("IPv4");
      expect(server.seen[0].address).toBe("::ffff:127.0.0.1");
      expect(server.seen.map((s) => ({ address: withoutV4Prefix(s.address), port: s.port }))).toContainEqual(mapped);
    } finally {
      await server.close();
    }
  });

  test("stun 0.97 (RFC 3489, no cookie) test I reads MAPPED-ADDRESS equal to its own port", async () => {
    const server = await startServer("udp4", "127.0.0.1");
    try {
      // Test number 1 = RFC 3489 test I only; the others need a second server address we do not have.
      const output = await run(["stun", `127.0.0.1:${server.port}`, "1", "-v"]);
      const mapped = /MappedAddress = (\S+):(\d+)/.exec(output);
      const opened = /Opened port (\d+)/.exec(output);
      if (mapped === null || opened === null) throw new Error(`stun printed no mapped address:\n${output}`);
      expect(mapped[1]).toBe("127.0.0.1");
      expect(mapped[2]).toBe(opened[1]);
      expect(server.seen).toContainEqual({ address: mapped[1], port: Number(mapped[2]) });
      expect(server.responder.answered).toBeGreaterThanOrEqual(1);
    } finally {
      await server.close();
    }
  });
});
