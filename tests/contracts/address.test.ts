// The one address type (contracts/address.ts): parse, print, unmap, socket ends.
import { describe, expect, test } from "bun:test";
import { createServer, connect } from "node:net";
import { formatAddress, localOf, parseAddress, remoteOf, unmapIp } from "../../src/contracts/address.ts";
import { ConfigError } from "../../src/errors.ts";

describe("addresses", () => {
  test("parseAddress reads ip:port, [v6]:port and a #key, and formatAddress prints them back", () => {
    const key = "ab".repeat(32);
    const v4 = parseAddress(`1.2.3.4:7788#${key}`);
    expect(v4).toMatchObject({ ip: "1.2.3.4", port: 7788, family: 4 });
    expect(Buffer.from(v4.publicKey!).toString("hex")).toBe(key);
    const v6 = parseAddress("[2001:db8::1]:80");
    expect(v6).toMatchObject({ ip: "2001:db8::1", port: 80, family: 6, publicKey: undefined });
    expect(formatAddress(v4)).toBe("1.2.3.4:7788");
    expect(formatAddress(v6)).toBe("[2001:db8::1]:80");
    expect(formatAddress("2001:db8::1", 80)).toBe("[2001:db8::1]:80");
    expect(parseAddress("localhost:1").ip).toBe("127.0.0.1");
  });

  test("parseAddress names the flag and the reason in a ConfigError", () => {
    for (const [text, why] of [
      ["1.2.3.4", "missing port"],
      ["1.2.3.4:0", "out of range"],
      ["1.2.3.4:65536", "out of range"],
      ["example.com:80", "not an IP address"],
      ["1.2.3.4:80#abc", "64 hex digits"],
      ["1.2.3.4:80#a#b", "malformed"],
    ] as const) {
      expect(() => parseAddress(text, "--peer")).toThrow(ConfigError);
      expect(() => parseAddress(text, "--peer")).toThrow(why);
    }
    expect(parseAddress("127.0.0.1:0", "admin", { allowPortZero: true }).port).toBe(0);
  });

  test("unmapIp shows IPv4-mapped IPv6 as IPv4 and leaves other addresses alone", () => {
    expect(unmapIp("::ffff:10.0.0.1")).toBe("10.0.0.1");
    expect(unmapIp("::ffff:abcd")).toBe("::ffff:abcd");
    expect(unmapIp("2001:db8::1")).toBe("2001:db8::1");
  });

  test("remoteOf and localOf read both ends of a real dual-stack connection as IPv4", async () => {
    const server = createServer();
    await new Promise<void>((r) => server.listen(0, "::", r));
    const port = (server.address() as { port: number }).port;
    const accepted = new Promise<import("node:net").Socket>((r) => server.once("connection", r));
    const client = connect(port, "127.0.0.1");
    await new Promise((r) => client.once("connect", r));
    const conn = await accepted;
    try {
      expect(remoteOf(conn)).toEqual({ ip: "127.0.0.1", port: client.localPort! });
      expect(localOf(conn)).toEqual({ ip: "127.0.0.1", port });
    } finally {
      client.destroy();
      conn.destroy();
      await new Promise((r) => server.close(r));
    }
    expect(remoteOf({})).toEqual({ ip: "", port: 0 });
  });
});
