// Wire names from the service descriptors (src/rpc/methods.ts) and source prefixes (src/rpc/ip-prefix.ts).
import { describe, expect, test } from "bun:test";
import { prefixOf } from "../../src/rpc/ip-prefix.ts";
import { METHOD, methodName, SERVICES } from "../../src/rpc/methods.ts";
import { Mesh, Nat, PunchLink } from "../../src/wire/gen/services_pb.ts";

describe("method names", () => {
  test("follow <service>.<method> in kebab case", () => {
    expect(methodName(Mesh.method.peers)).toBe("mesh.peers");
    expect(methodName(Mesh.method.selfCheckEcho)).toBe("mesh.self-check-echo");
    expect(methodName(Nat.method.liveBegin)).toBe("nat.live-begin");
    expect(methodName(PunchLink.method.ping)).toBe("punch-link.ping");
    expect(METHOD.app.whoami).toBe("app.whoami");
  });

  test("every rpc has a distinct name that fits the Envelope's 64-character method field", () => {
    const names = SERVICES.flatMap((s) => s.methods.map(methodName));
    expect(names.length).toBe(30);
    expect(new Set(names).size).toBe(names.length);
    for (const n of names) expect(n).toMatch(/^[a-z-]+\.[a-z-]+$/);
    expect(Math.max(...names.map((n) => n.length))).toBeLessThanOrEqual(64);
  });
});

describe("source prefixes", () => {
  test("IPv4 addresses are masked to the given length", () => {
    expect(prefixOf("198.51.100.7", 32, 64)).toBe("198.51.100.7/32");
    expect(prefixOf("198.51.100.7", 24, 64)).toBe("198.51.100.0/24");
    expect(prefixOf("198.51.100.255", 20, 64)).toBe("198.51.96.0/20");
  });

  test("IPv6 addresses are masked to the given length, whatever their spelling", () => {
    expect(prefixOf("2001:db8:1:2:3:4:5:6", 32, 64)).toBe("2001:db8:1:2::/64");
    expect(prefixOf("2001:db8:1:2::9", 32, 64)).toBe("2001:db8:1:2::/64");
    expect(prefixOf("2001:0db8:0001:0002:ffff::", 32, 48)).toBe("2001:db8:1::/48");
    expect(prefixOf("::1", 32, 64)).toBe("0:0:0:0::/64");
    expect(prefixOf("2001:db8:1:2:3:4:5:6", 32, 128)).toBe("2001:db8:1:2:3:4:5:6/128");
    expect(prefixOf("::ffff:192.0.2.1", 32, 128)).toBe("0:0:0:0:0:ffff:c000:201/128");
    expect(prefixOf("2001:db8:1:2:ff00::", 32, 72)).toBe("2001:db8:1:2:ff00::/72");
  });

  test("a name that is not an IP stays itself", () => {
    expect(prefixOf("sim-node-3", 32, 64)).toBe("sim-node-3");
  });

  test("remembered prefixes stay right for each length, through a flood of new addresses", () => {
    for (let round = 0; round < 2; round++) {
      for (let i = 0; i < 20_000; i++) {
        const ip = `10.${(i >> 8) & 255}.${i & 255}.${round + 1}`;
        expect(prefixOf(ip, 24, 64)).toBe(`10.${(i >> 8) & 255}.${i & 255}.0/24`);
        expect(prefixOf(ip, 32, 64)).toBe(`${ip}/32`);
      }
    }
  });
});
