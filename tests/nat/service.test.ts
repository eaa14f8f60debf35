// The NAT services inside real nodes on loopback (src/nat/service.ts, probe-client.ts; DESIGN §6): four meshed
// nodes on distinct loopback hosts, `runProbe` from another loopback host, the own-class self-probe, and the
// lifetime test's protocol. Real NAT classes are proven in tests/lab/ (namespace lab).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { loadConfig } from "../../src/config/load.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { measureLifetime } from "../../src/nat/lifetime-client.ts";
import { runProbe } from "../../src/nat/probe-client.ts";
import { createUdpClient } from "../../src/transport/udp/client.ts";
import { freeUdpTcpPort, loopbackPrefix, ONE_MACHINE, runCli, tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

const PREFIX = loopbackPrefix();
const HOSTS = [1, 2, 3, 4].map((i) => `${PREFIX}.${i}`);
const PORT = await freeUdpTcpPort(HOSTS[0]!);
const CLIENT_IP = `${PREFIX}.100`;
const dir = tempDir("findings-nat-service-");
const nodes: FindingsNode[] = [];


beforeAll(async () => {
  for (const [i, host] of HOSTS.entries()) {
    const home = join(dir.path, `n${i}`);
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const { config } = loadConfig({
      home,
      flags: {
        host,
        server_uport: PORT,
        server_tport: PORT,
        admin: "",
        public: i === 0,
        peers: i === 0 ? [] : [`${HOSTS[0]}:${PORT}`],
        max_links_per_ip: 256,
        ...ONE_MACHINE,
        probe_timeout_s: 3,
        // Loopback is a special-purpose range: as in a lab.
        allow_special_targets: true,
      },
    });
    const node = await createNode({ config, home, log: silentLogger });
    nodes.push(node);
    await node.start();
  }
  // Every node linked to every other (the mesh service shares candidates and fills its pool).
  await until(() => nodes.every((n) => new Set(n.mesh.links().map((l) => l.peerNodeId)).size >= 3), { what: "a full mesh of 4 nodes", timeoutMs: 30_000 });
}, 45_000);

afterAll(async () => {
  await Promise.all(nodes.map((n) => n.stop()));
  dir[Symbol.dispose]();
});

describe("findings probe against loopback nodes", () => {
  test("a host without NAT is reported public, certain, with NewHost from a delegate the client never talked to", async () => {
    const servers = HOSTS.slice(0, 3).map((ip) => ({ ip, port: PORT }));
    const r = await runProbe({ servers, localIp: CLIENT_IP, timeoutMs: 4_000 });
    expect(r).toMatchObject({ nat: "public", label: "Public", mapping: "endpoint-independent", filtering: "endpoint-independent", portPreserved: true, lifetime: null });
    expect(r.localAddress).toStartWith(`${CLIENT_IP}:`);
    expect(r.publicAddress).toBe(r.localAddress);
    expect(r.servers).toEqual(servers.map((s) => `${s.ip}:${s.port}`));
    const decision = r.evidence.find((e) => e.test === "decision")!;
    expect(decision.certain).toBe(true);
    // The NewHost probe that decided it came from an IP the client never talked to.
    const newHost = r.evidence.find((e) => e.test === "new-host" && typeof e.received === "string")!;
    expect(HOSTS.slice(0, 3)).not.toContain(String(newHost.received).split(":")[0]);
    expect(r.evidence.filter((e) => e.test === "pre-probe" && e.mapped)).toHaveLength(3);
    // The passage probe came on the QUIC socket's 4-tuple, from the source server's own endpoint.
    expect(r.evidence.find((e) => e.test === "passage" && typeof e.received === "string")?.received).toBe(`${HOSTS[0]}:${PORT}`);
    // A certain answer comes from a received packet, long before the timeout.
    expect(r.elapsedMs).toBeLessThan(3_000);
  }, 15_000);

  test("with one server given, the client learns more from it and still pre-probes 3 distinct IPs", async () => {
    const r = await runProbe({ servers: [{ ip: HOSTS[0]!, port: PORT }], localIp: `${PREFIX}.101`, timeoutMs: 4_000 });
    expect(r.nat).toBe("public");
    expect(new Set(r.servers.map((s) => s.split(":")[0])).size).toBeGreaterThanOrEqual(3);
    expect(r.evidence.find((e) => e.test === "servers")?.learned).toHaveLength(2);
  }, 15_000);

  test("a server that is not there gives udp-blocked after the timeout, saying whether TCP works", async () => {
    const r = await runProbe({ servers: [{ ip: `${PREFIX}.250`, port: PORT }], localIp: `${PREFIX}.102`, timeoutMs: 1_500 });
    expect(r.nat).toBeNull(); // nothing over UDP nor TCP: no class can be given
    expect(r.evidence.find((e) => e.test === "tcp")?.mapped).toBeNull();
    expect(r.elapsedMs).toBeGreaterThanOrEqual(1_400);
    expect(r.elapsedMs).toBeLessThan(3_000);
  }, 10_000);
});

describe("findings probe (CLI)", () => {
  test("--json prints the DESIGN §6 object; a server given with #key is reached over a bootstrapped, pinned link", async () => {
    using home = tempDir();
    const key = nodes[0]!.key.publicKeyHex;
    const args = ["probe", "--json", "--home", home.path, "--timeout", "4", "--server", `${HOSTS[0]}:${PORT}#${key}`, "--server", `${HOSTS[1]}:${PORT}`, "--server", `${HOSTS[2]}:${PORT}`];
    const r = await runCli(args, { timeoutMs: 20_000 });
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(Object.keys(report)).toEqual(["nat", "label", "publicAddress", "localAddress", "mapping", "filtering", "portPreserved", "lifetime", "servers", "evidence", "elapsedMs", "families", "keySource", "node"]);
    expect(report).toMatchObject({ nat: "public", label: "Public", lifetime: null, keySource: "pinned" });
    expect(report.node).not.toBeNull();
    const pre = (server: string) => report.evidence.find((e: { test: string; server?: string }) => e.test === "pre-probe" && e.server === server);
    expect(pre(`${HOSTS[0]}:${PORT}`).pinned).toBe(true);
    expect(pre(`${HOSTS[1]}:${PORT}`).pinned).toBe(false);
    expect(r.stderr).toBe("");
  }, 25_000);

  test("without --json it shows progress on stderr and a short summary on stdout", async () => {
    using home = tempDir();
    // Progress is drawn only on a terminal; FINDINGS_PROGRESS=1 forces it for this pipe.
    const r = await runCli(["probe", "--home", home.path, "--timeout", "4", ...HOSTS.slice(0, 3).flatMap((h) => ["--server", `${h}:${PORT}`])], {
      timeoutMs: 20_000,
      env: { FINDINGS_PROGRESS: "1" },
    });
    // Compared as one object so that a failure shows the whole output.
    expect({ code: r.code, first: r.stdout.split("\n")[0], stdout: r.stdout, stderr: r.stderr }).toMatchObject({
      code: 0,
      first: "NAT class: Public — no NAT; unsolicited UDP gets in",
      stderr: expect.stringContaining("decision"),
    });
    expect(r.stderr).toContain("pre-probe");
  }, 25_000);

  test("without any server it fails with one clear line", async () => {
    using home = tempDir();
    const r = await runCli(["probe", "--home", home.path]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("--server");
  });
});

describe("own class", () => {
  test("a serving node probes itself through its peers and reports public", async () => {
    const node = nodes[1]!;
    const seen: string[] = [];
    const off = node.nat.onOwnClass((own) => seen.push(own.nat));
    const first = node.nat.ownClass();
    const r = await node.nat.probeSelf();
    off();
    // The background self-probe may already have measured it; a listener hears only changes.
    expect(seen).toEqual(first ? [] : ["public"]);
    expect(r?.nat).toBe("public");
    expect(node.nat.ownClass()).toMatchObject({ nat: "public", label: "Public", certain: true });
    expect((node.status().node as { nat: unknown }).nat).toBe("public");
    // Each self-probe that ran is timed by the class it found (the background one may have run too).
    expect(node.metrics.render()).toMatch(/^findings_nat_self_probe_seconds_count\{nat_class="public"\} [1-9]\d*$/m);
  }, 20_000);
});

describe("mapping lifetime protocol", () => {
  test("every probe arrives when no NAT expires the mapping: lower bound = the longest delay, no upper bound", async () => {
    const client = createUdpClient({}, { host: `${PREFIX}.103`, port: 0 });
    await client.start();
    try {
      const link = await client.dial({ ip: HOSTS[0]!, port: PORT });
      const out = await measureLifetime({ link, server: { ip: HOSTS[0]!, port: PORT }, localIp: `${PREFIX}.103`, delaysS: [0.3, 0.6], maxS: 0.9, graceMs: 300 });
      expect(out.report).toMatchObject({ lowerBound: 0.9, upperBound: null });
      expect(out.report.pattern).toContain("request/reply");
      expect(out.samples.map((s) => s.arrived)).toEqual([true, true, true]);
      // Ages are the server's: each probe left about its delay after the ack.
      expect(out.samples[0]!.ageS).toBeGreaterThanOrEqual(0.3);
      expect(out.samples[2]!.ageS).toBeLessThan(1.5);
    } finally {
      await client.stop();
    }
  }, 10_000);
});
