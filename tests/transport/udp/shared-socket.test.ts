// The shared socket sits on Bun.udpSocket under @matrixai/quic's QUICSocket: batched sends, errors counted
// and never fatal, the bad datagram of a batch dropped without the rest.
import { afterEach, describe, expect, test } from "bun:test";
import QuicLibLogger, { LogLevel } from "@matrixai/logger";
import { SharedUdpSocket } from "../../../src/transport/udp/shared-socket.ts";
import { BunDatagramSocket } from "../../../src/transport/udp/bun-socket.ts";
import { setSocketBuffers } from "../../../src/transport/udp/socket-buffers.ts";
import { until } from "../../wait.ts";

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const fn of cleanups.splice(0).reverse()) await fn();
});

async function shared(host = "127.0.0.1"): Promise<SharedUdpSocket> {
  const socket = new SharedUdpSocket({ logger: new QuicLibLogger("test", LogLevel.SILENT, []), onRawDatagram: () => {} });
  await socket.start({ host, port: 0 });
  cleanups.push(() => socket.stop({ force: true }));
  return socket;
}

/** A plain receiver that keeps what it gets, in order. */
async function receiver(): Promise<{ port: number; got: string[] }> {
  const got: string[] = [];
  const sock = await Bun.udpSocket({ hostname: "127.0.0.1", socket: { data: (_s, buf) => void got.push(buf.toString()) } });
  cleanups.push(() => sock.close());
  // Room for thousands of datagrams sent in one burst (the default 208 KiB drops them).
  await setSocketBuffers((sock as unknown as { fd: number }).fd, 8 << 20, 0);
  return { port: sock.port, got };
}

/** A port where nothing listens (a socket bound, then closed): datagrams to it draw ICMP port-unreachable. */
async function closedPort(): Promise<number> {
  const sock = await Bun.udpSocket({ hostname: "127.0.0.1" });
  const port = sock.port;
  sock.close();
  return port;
}

describe("shared UDP socket on Bun.udpSocket", () => {
  test("QUICSocket's socket is a BunDatagramSocket bound where QUICSocket says", async () => {
    const socket = await shared();
    const inner = (socket as unknown as { socket: unknown }).socket;
    expect(inner).toBeInstanceOf(BunDatagramSocket);
    expect((inner as BunDatagramSocket).address().port).toBe(socket.port);
  });

  test("datagrams queued in one turn arrive in order; a refused one in the middle is counted and the rest still go", async () => {
    const socket = await shared();
    const to = await receiver();
    const enc = new TextEncoder();
    for (let i = 0; i < 50; i++) {
      // The broadcast address is refused by the kernel (EACCES without SO_BROADCAST): sendmmsg stops there.
      if (i === 20) socket.sendRawNow(enc.encode("refused"), 9, "255.255.255.255");
      socket.sendRawNow(enc.encode(`m${i}`), to.port, "127.0.0.1");
    }
    await until(() => to.got.length >= 50, { what: "all 50 datagrams", timeoutMs: 5000 });
    expect(to.got).toEqual(Array.from({ length: 50 }, (_, i) => `m${i}`));
    expect(socket.counters.socketErrors).toBe(1);
  });

  test("ICMP port-unreachable is counted, not fatal, and the socket keeps sending", async () => {
    const socket = await shared();
    const gone = await closedPort();
    const to = await receiver();
    for (let i = 0; i < 5; i++) {
      await socket.sendRaw(new Uint8Array([i]), gone, "127.0.0.1");
      await until(() => socket.counters.socketErrors > i, { what: `ICMP report ${i + 1}`, timeoutMs: 5000 });
    }
    await socket.sendRaw(new TextEncoder().encode("after"), to.port, "127.0.0.1");
    socket.sendRawNow(new TextEncoder().encode("queued"), to.port, "127.0.0.1");
    await until(() => to.got.length >= 2, { what: "both datagrams after the ICMP reports", timeoutMs: 5000 });
    expect(to.got).toEqual(["after", "queued"]);
  });

  test("sendRaw copies at once, and throws what the kernel refuses outright", async () => {
    const socket = await shared();
    const to = await receiver();
    const bytes = new TextEncoder().encode("abc");
    await socket.sendRaw(bytes, to.port, "127.0.0.1");
    bytes.fill(0x7a);
    await until(() => to.got.length === 1, { what: "the datagram", timeoutMs: 5000 });
    expect(to.got[0]).toBe("abc");
    await expect(socket.sendRaw(bytes, 9, "255.255.255.255")).rejects.toMatchObject({ code: "EACCES" });
  });

  test("a dual-stack socket hands IPv4 senders to onRawDatagram as plain IPv4", async () => {
    const seen: Array<{ address: string; family: string }> = [];
    const socket = new SharedUdpSocket({ logger: new QuicLibLogger("test", LogLevel.SILENT, []), onRawDatagram: (_b, r) => void seen.push(r) });
    await socket.start({ host: "::", port: 0 });
    cleanups.push(() => socket.stop({ force: true }));
    const sender = await Bun.udpSocket({ hostname: "127.0.0.1" });
    cleanups.push(() => sender.close());
    const request = new Uint8Array([0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xa4, 0x42, ...new Uint8Array(12)]);
    sender.send(request, socket.port, "127.0.0.1");
    await until(() => seen.length === 1, { what: "the Binding Request", timeoutMs: 5000 });
    expect(seen[0]).toMatchObject({ address: "127.0.0.1", family: "IPv4" });
  });

  test("kernel buffers can be set on a Bun.udpSocket", async () => {
    const sock = await Bun.udpSocket({ hostname: "127.0.0.1" });
    cleanups.push(() => sock.close());
    const fd = (sock as unknown as { fd: number }).fd;
    expect(typeof fd).toBe("number");
    expect(await setSocketBuffers(fd, 1 << 20, 1 << 19)).toBe(process.platform === "linux");
  });
});

describe("BunDatagramSocket send queue", () => {
  async function bound(counts: { errors: number; dropped: number }): Promise<BunDatagramSocket> {
    const s = new BunDatagramSocket("udp4", { onDatagram: () => {}, onError: () => void counts.errors++, onSendDropped: () => void counts.dropped++ });
    await new Promise<void>((resolve, reject) => s.bind(0, "127.0.0.1", (err) => (err ? reject(err) : resolve())));
    cleanups.push(() => s.close());
    return s;
  }

  test("a bad port is refused on enqueue and a bad address mid-batch costs only its own datagram", async () => {
    const counts = { errors: 0, dropped: 0 };
    const s = await bound(counts);
    const to = await receiver();
    const enc = new TextEncoder();
    for (let i = 0; i < 20; i++) {
      if (i === 5) s.enqueue(enc.encode("port 0"), 0, "127.0.0.1");
      if (i === 10) s.enqueue(enc.encode("no address"), 9, "not-an-ip");
      s.enqueue(enc.encode(`m${i}`), to.port, "127.0.0.1");
    }
    await until(() => to.got.length >= 20, { what: "the 20 good datagrams", timeoutMs: 5000 });
    expect(to.got).toEqual(Array.from({ length: 20 }, (_, i) => `m${i}`));
    expect(counts.errors).toBe(2);
  });

  test("a full kernel buffer keeps the rest queued, in order, until drain; beyond the queue's bound datagrams are dropped and counted", async () => {
    const counts = { errors: 0, dropped: 0 };
    const s = await bound(counts);
    const to = await receiver();
    // Loopback never fills the send buffer, so the kernel's answer is played by the socket: full after 3.
    const inner = (s as unknown as { socket: Bun.udp.Socket<"buffer"> }).socket;
    const realSendMany = inner.sendMany.bind(inner);
    const realSend = inner.send.bind(inner);
    let full = false;
    let room = 3;
    inner.sendMany = (packets) => {
      if (!full) return realSendMany(packets);
      const n = Math.min(room, packets.length / 3);
      room -= n;
      return realSendMany(packets.slice(0, n * 3));
    };
    inner.send = (data, port, address) => (full && room <= 0 ? false : realSend(data, port, address));
    full = true;
    const enc = new TextEncoder();
    for (let i = 0; i < 10; i++) s.enqueue(enc.encode(`a${i}`), to.port, "127.0.0.1");
    await until(() => to.got.length >= 3, { what: "the 3 datagrams that fit", timeoutMs: 5000 });
    for (let i = 0; i < 4100; i++) s.enqueue(enc.encode(`b${i}`), to.port, "127.0.0.1");
    expect(counts.dropped).toBe(10 - 3 + 4100 - 4096);
    expect(to.got).toEqual(["a0", "a1", "a2"]);
    full = false;
    s.drained();
    await until(() => to.got.length >= 4096 + 3, { what: "the queue sent after drain", timeoutMs: 5000 });
    expect(to.got.slice(3, 10)).toEqual(["a3", "a4", "a5", "a6", "a7", "a8", "a9"]);
    expect(to.got.at(-1)).toBe(`b${4096 - 7 - 1}`);
  });
});
