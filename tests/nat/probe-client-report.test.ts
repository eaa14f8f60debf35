// The probe report's human summary and the lifetime client's refinement pool (src/nat/probe-report.ts,
// lifetime-client.ts; DESIGN §6, STYLE "Reports": the summary is built from the JSON object).
import { describe, expect, test } from "bun:test";
import { poolOffsetsMs } from "../../src/nat/lifetime-client.ts";
import { summarizeProbe, type ProbeReport } from "../../src/nat/probe-report.ts";

const base: ProbeReport = {
  nat: "port-restricted-cone",
  label: "P-RC",
  publicAddress: "203.0.113.103:40000",
  localAddress: "10.99.3.2:40000",
  mapping: "endpoint-independent",
  filtering: "address-and-port-dependent",
  portPreserved: true,
  lifetime: null,
  servers: ["203.0.113.1:7788", "203.0.113.2:7788", "203.0.113.3:7788"],
  evidence: [{ test: "decision", rule: "nothing", reason: "no NewPort or NewHost probe arrived", certain: true }],
  elapsedMs: 1480,
};

describe("summarizeProbe", () => {
  test("names the class, the addresses, the axes and the time", () => {
    expect(summarizeProbe(base)).toBe(
      [
        "NAT class: P-RC — port-restricted cone: only the exact ip:port you sent to can answer",
        "public address: 203.0.113.103:40000 (local 10.99.3.2:40000)",
        "mapping endpoint-independent, filtering address-and-port-dependent, port preserved",
        "servers: 203.0.113.1:7788, 203.0.113.2:7788, 203.0.113.3:7788; 1.48 s",
      ].join("\n"),
    );
  });

  test("says when the answer is not certain, whether TCP works when UDP is blocked, and the lifetime with its pattern", () => {
    const unsure = { ...base, evidence: [{ test: "decision" as const, certain: false, reason: "x" }] };
    expect(summarizeProbe(unsure)).toContain("not certain");
    const blocked: ProbeReport = { ...base, nat: "udp-blocked", label: "UDP-Blocked", publicAddress: null, mapping: null, filtering: null, portPreserved: null, evidence: [{ test: "tcp", mapped: "203.0.113.106:5000" }] };
    expect(summarizeProbe(blocked)).toContain("TCP works (HTTPS whoami: 203.0.113.106:5000)");
    const life: ProbeReport = { ...base, lifetime: { seconds: 20, lowerBound: 19.9, upperBound: 20.1, pattern: "one outbound datagram answered at once, then idle (UDP request/reply)" } };
    expect(summarizeProbe(life)).toContain("mapping lifetime: 20 s (between 19.9 and 20.1 s), for one outbound datagram");
  });

  test("a run where nothing answered says so", () => {
    const none: ProbeReport = { ...base, nat: null, label: null, evidence: [{ test: "decision", reason: "no server answered over UDP nor TCP" }] };
    expect(summarizeProbe(none).split("\n")[0]).toBe("NAT class: unknown (no server answered over UDP nor TCP)");
  });
});

describe("the lifetime refinement pool", () => {
  test("starts 1 s apart, grows by ~20 %, and reaches past the widest first-round gap", () => {
    const delays = [10, 20, 30, 45, 60, 90, 120, 180, 300];
    const pool = poolOffsetsMs(delays, 1000, 31);
    expect(pool.slice(0, 5)).toEqual([1000, 2000, 3000, 4000, 5000]);
    for (let i = 1; i < pool.length; i++) expect(pool[i]! - pool[i - 1]!).toBeLessThanOrEqual(Math.max(1000, pool[i - 1]! * 0.2) + 1);
    expect(pool.at(-1)!).toBeGreaterThanOrEqual(120_000);
    expect(pool.length + delays.length).toBeLessThanOrEqual(40);
  });

  test("is capped at the sockets the server allows", () => {
    expect(poolOffsetsMs([10, 300], 1000, 5)).toHaveLength(5);
  });
});
