// Client-side SN source rules R1–R5 and address normalisation (DESIGN §6).

import { describe, expect, test } from "bun:test";
import {
  checkProbeSource,
  formatEndpoint,
  normalizeIp,
  sameEndpoint,
  sameIp,
  type SourceRules,
} from "../../src/nat/source-check.ts";

const SERVER = { ip: "203.0.113.1", port: 7788 };
const formal = (contactedIps: string[] = []): SourceRules => ({ sourceServer: SERVER, contactedIps, arrivedOn: "formal" });
const quic: SourceRules = { sourceServer: SERVER, arrivedOn: "quic" };

describe("R1 passage", () => {
  test("is accepted from the source server's exact ip:port on the QUIC socket", () => {
    expect(checkProbeSource("passage", { ip: "203.0.113.1", port: 7788 }, quic)).toEqual({ ok: true, source: "passage" });
  });

  test("is accepted when the socket reports the server as an IPv4-mapped IPv6 address", () => {
    expect(checkProbeSource("passage", { ip: "::ffff:203.0.113.1", port: 7788 }, quic).ok).toBe(true);
  });

  test("is rejected from the source server's IP on another port", () => {
    expect(checkProbeSource("passage", { ip: "203.0.113.1", port: 7789 }, quic)).toEqual({
      ok: false,
      reason: "passage-not-from-source-endpoint",
    });
  });

  test("is rejected from another host", () => {
    expect(checkProbeSource("passage", { ip: "203.0.113.2", port: 7788 }, quic)).toEqual({
      ok: false,
      reason: "passage-not-from-source-endpoint",
    });
  });
});

describe("R2 NewPort", () => {
  test("is accepted from the source server's IP on another port", () => {
    expect(checkProbeSource("newPort", { ip: "203.0.113.1", port: 50001 }, formal())).toEqual({ ok: true, source: "newPort" });
  });

  test("is rejected from the source server's own port (that is what passage tests)", () => {
    expect(checkProbeSource("newPort", { ip: "203.0.113.1", port: 7788 }, formal())).toEqual({
      ok: false,
      reason: "newport-from-source-port",
    });
  });

  test("is rejected from another IP, even the server's second address", () => {
    expect(checkProbeSource("newPort", { ip: "203.0.113.11", port: 50001 }, formal())).toEqual({
      ok: false,
      reason: "newport-not-from-source-ip",
    });
  });
});

describe("R3/R4 NewHost", () => {
  test("is accepted from an IP that is neither the source server's nor one we sent to", () => {
    expect(checkProbeSource("newHost", { ip: "203.0.113.3", port: 7788 }, formal(["203.0.113.1", "203.0.113.2"]))).toEqual({
      ok: true,
      source: "newHost",
    });
  });

  test("is rejected from the source server's IP on any port", () => {
    for (const port of [7788, 50001]) {
      expect(checkProbeSource("newHost", { ip: "203.0.113.1", port }, formal())).toEqual({
        ok: false,
        reason: "newhost-from-source-ip",
      });
    }
  });

  test("is rejected from an IP this host sent to during the run (a per-host filter would let it in)", () => {
    expect(checkProbeSource("newHost", { ip: "203.0.113.2", port: 9999 }, formal(["203.0.113.2"]))).toEqual({
      ok: false,
      reason: "newhost-from-contacted-ip",
    });
  });

  test("matches contacted IPv6 addresses written differently", () => {
    const rules = formal(["2001:DB8:0:0::7"]);
    expect(checkProbeSource("newHost", { ip: "2001:db8::7", port: 1 }, rules)).toEqual({
      ok: false,
      reason: "newhost-from-contacted-ip",
    });
  });
});

describe("R5 socket", () => {
  test("passage on the formal socket is rejected", () => {
    expect(checkProbeSource("passage", SERVER, { ...quic, arrivedOn: "formal" })).toEqual({
      ok: false,
      reason: "passage-on-formal-socket",
    });
  });

  test("NewPort and NewHost on the QUIC socket are rejected", () => {
    expect(checkProbeSource("newPort", { ip: "203.0.113.1", port: 50001 }, quic)).toEqual({
      ok: false,
      reason: "newport-on-quic-socket",
    });
    expect(checkProbeSource("newHost", { ip: "203.0.113.3", port: 1 }, quic)).toEqual({
      ok: false,
      reason: "newhost-on-quic-socket",
    });
  });
});

describe("address normalisation", () => {
  test("folds IPv4-mapped IPv6, brackets, case and IPv6 spelling", () => {
    expect(normalizeIp("::ffff:203.0.113.1")).toBe("203.0.113.1");
    expect(normalizeIp("::FFFF:cb00:7101")).toBe("203.0.113.1");
    expect(normalizeIp("[2001:DB8::1]")).toBe("2001:db8::1");
    expect(normalizeIp("2001:0db8:0000:0000:0000:0000:0000:0001")).toBe("2001:db8::1");
    expect(normalizeIp("fe80::1%eth0")).toBe("fe80::1%eth0");
    expect(normalizeIp("not-an-ip")).toBe("not-an-ip");
  });

  test("compares endpoints by normalised IP and port", () => {
    expect(sameIp("::ffff:10.0.0.1", "10.0.0.1")).toBe(true);
    expect(sameEndpoint({ ip: "10.0.0.1", port: 1 }, { ip: "10.0.0.1", port: 2 })).toBe(false);
    expect(formatEndpoint({ ip: "2001:db8::1", port: 7788 })).toBe("[2001:db8::1]:7788");
    expect(formatEndpoint({ ip: "::ffff:203.0.113.1", port: 7788 })).toBe("203.0.113.1:7788");
  });
});
