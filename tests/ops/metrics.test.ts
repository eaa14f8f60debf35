// GET /metrics of a real node: Prometheus names and HELP for every family, labels instead of glued names,
// a latency histogram and punch families fed by real QUIC requests and a real punch between two apps, the
// process families against sockets the test opens, and promtool's approval when it is installed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { createSocket } from "node:dgram";
import { createServer } from "node:net";
import { embeddedDefaults } from "../../src/config/load.ts";
import { silentLogger } from "../../src/contracts/logger.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { createPunchClient, type PunchClient } from "../../src/punch/punch-client.ts";
import { quicWhoami } from "../../src/transport/quic/whoami.ts";
import { promtool, promtoolCheck, warnIfNoPromtool } from "../contracts/promtool.ts";
import { tempDir } from "../helpers.ts";
import { until } from "../wait.ts";

const home = tempDir("findings-metrics-");
let node: FindingsNode;
const apps: PunchClient[] = [];
let text: string;

async function startApp(): Promise<PunchClient> {
  const client = createPunchClient(
    { key: generateNodeKey() },
    { server: { ip: "127.0.0.1", port: node.udp.port, publicKey: node.key.publicKey }, kind: "app:chat", nat: "public", host: "127.0.0.1" },
  );
  apps.push(client);
  await client.start();
  return client;
}

beforeAll(async () => {
  const config = { ...embeddedDefaults(), host: "127.0.0.1", server_uport: 0, server_tport: 0, admin: "127.0.0.1:0", public: true, stakes: { "app:chat": "addr-1" } };
  node = await createNode({ config, home: home.path, log: silentLogger });
  await node.start();
  await quicWhoami({ ip: "127.0.0.1", port: node.udp.port }, { timeoutMs: 5000 });
  const a = await startApp();
  const b = await startApp();
  const [punched] = await b.punch(a.nodeId);
  expect(punched).toMatchObject({ connected: true, strategy: "direct" });
  const res = await fetch(`${node.adminUrl}/metrics`);
  expect(res.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
  text = await res.text();
});

afterAll(async () => {
  await Promise.all(apps.map((a) => a.stop()));
  await node?.stop();
  home[Symbol.dispose]();
});

/** The value of the one sample `series` (a name with its labels, as rendered) in `body`. */
function sample(body: string, series: string): number {
  const line = body.split("\n").find((l) => l.startsWith(`${series} `));
  if (line === undefined) throw new Error(`no sample ${series} in /metrics`);
  return Number(line.slice(series.length + 1));
}

/** family name → TYPE, from the # TYPE lines. */
function types(body: string): Map<string, string> {
  return new Map([...body.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
}

describe("/metrics", () => {
  test("every family is findings_ snake_case with a HELP line; counters end in _total, nothing else does", () => {
    const families = types(text);
    expect(families.size).toBeGreaterThan(40);
    for (const [name, type] of families) {
      expect(name).toMatch(/^findings_[a-z0-9_]+$/);
      expect(text).toMatch(new RegExp(`^# HELP ${name} \\S.*$`, "m"));
      expect(name.endsWith("_total")).toBe(type === "counter");
    }
    // Every sample line belongs to a declared family.
    for (const line of text.split("\n").filter((l) => l && !l.startsWith("#"))) {
      const base = line.match(/^([a-z0-9_]+)/)![1]!.replace(/_(bucket|sum|count)$/, "");
      expect(families.has(line.match(/^([a-z0-9_]+)/)![1]!) || families.get(base) === "histogram").toBe(true);
    }
  });

  test("today's counters appear as labelled families, not glued names", () => {
    expect(text).not.toContain("refusedLimits");
    expect(text).toMatch(/^findings_quic_streams_failed_total\{reason="limit"\} 0$/m);
    expect(text).toMatch(/^findings_udp_datagrams_total\{kind="quic"\} [1-9]\d*$/m);
    expect(text).toMatch(/^findings_quic_connections_total [1-9]\d*$/m);
    expect(text).toMatch(/^findings_punch_joins_refused_total\{reason="full"\} 0$/m);
    expect(text).toMatch(/^findings_nat_own_class\{nat_class="unknown"\} 1$/m);
    expect(text).toMatch(/^findings_mesh_links\{direction="out"\} 0$/m);
    expect(text).toMatch(/^findings_share_servers\{kind="app:chat"\} 0$/m);
    expect(types(text).get("findings_punch_brokered_total")).toBe("counter");
  });

  test("the QUIC whoami request shows in the handler latency histogram", () => {
    expect(text).toMatch(/^findings_rpc_request_duration_seconds_bucket\{method="app.whoami",transport="quic",le="\+Inf"\} 1$/m);
    expect(text).toMatch(/^findings_rpc_requests_total\{method="app.whoami"\} 1$/m);
    expect(text).toMatch(/^findings_rpc_request_duration_seconds_count\{method="app.whoami",transport="quic"\} 1$/m);
    expect(text).toMatch(/^findings_rpc_request_duration_seconds_count\{method="punch.request",transport="quic"\} 1$/m);
  });

  test("the punch between two apps shows by strategy, and the pool by kind and NAT class", () => {
    expect(text).toMatch(/^findings_punch_brokered_total\{strategy="direct"\} 1$/m);
    expect(text).toMatch(/^findings_punch_pool_members\{kind="app:chat",nat_class="public"\} 2$/m);
    expect(text).toMatch(/^findings_punch_joins_total\{result="joined"\} 2$/m);
  });

  test("the punch's brokering time shows in the histogram by strategy", () => {
    expect(types(text).get("findings_punch_broker_seconds")).toBe("histogram");
    expect(text).toMatch(/^findings_punch_broker_seconds_bucket\{strategy="direct",le="\+Inf"\} 1$/m);
    expect(text).toMatch(/^findings_punch_broker_seconds_count\{strategy="direct"\} 1$/m);
    // Two apps on loopback: the offer is acknowledged within the 2 s push timeout, well above 0.
    const seconds = sample(text, 'findings_punch_broker_seconds_sum{strategy="direct"}');
    expect(seconds).toBeGreaterThan(0);
    expect(seconds).toBeLessThan(2);
    // No self-probe ran (the node has no peers): the family is declared with no series.
    expect(types(text).get("findings_nat_self_probe_seconds")).toBe("histogram");
    expect(text).not.toContain("findings_nat_self_probe_seconds_count");
  });

  test("process families: memory, CPU, descriptors and start time have sane values", () => {
    expect(sample(text, "findings_process_resident_memory_bytes")).toBeGreaterThan(10 * 2 ** 20);
    expect(sample(text, "findings_process_heap_used_bytes")).toBeGreaterThan(0);
    // JavaScriptCore's heapUsed counts objects outside the reported heap size, so it can exceed heapTotal.
    expect(sample(text, "findings_process_heap_total_bytes")).toBeGreaterThan(0);
    expect(sample(text, "findings_process_cpu_seconds_total")).toBeGreaterThan(0);
    const fds = sample(text, "findings_process_open_fds");
    expect(fds).toBeGreaterThan(3);
    expect(sample(text, "findings_process_max_fds")).toBeGreaterThanOrEqual(fds);
    const started = sample(text, "findings_process_start_time_seconds");
    expect(started).toBeLessThan(Date.now() / 1000);
    expect(started).toBeGreaterThan(Date.now() / 1000 - 600);
    // The node's shared UDP socket and the apps' sockets; the TLS and admin listeners.
    expect(sample(text, 'findings_process_open_sockets{protocol="udp"}')).toBeGreaterThanOrEqual(3);
    expect(sample(text, 'findings_process_open_sockets{protocol="tcp"}')).toBeGreaterThanOrEqual(2);
  });

  test("a UDP socket and a TCP listener opened here are counted, by protocol", async () => {
    const read = () => {
      const body = node.metrics.render();
      return {
        fds: sample(body, "findings_process_open_fds"),
        udp: sample(body, 'findings_process_open_sockets{protocol="udp"}'),
        tcp: sample(body, 'findings_process_open_sockets{protocol="tcp"}'),
      };
    };
    const before = read();
    const udp = createSocket("udp4");
    await new Promise<void>((resolve) => udp.bind(0, "127.0.0.1", resolve));
    const tcp = createServer();
    await new Promise<void>((resolve) => tcp.listen(0, "127.0.0.1", resolve));
    try {
      expect(read()).toEqual({ fds: before.fds + 2, udp: before.udp + 1, tcp: before.tcp + 1 });
    } finally {
      udp.close();
      await new Promise((resolve) => tcp.close(resolve));
    }
    expect(read()).toEqual(before);
  });

  test("the event-loop lag is sampled while /metrics is served", async () => {
    const count = () => sample(node.metrics.render(), "findings_process_event_loop_lag_seconds_count");
    const first = count();
    await until(() => count() >= first + 2, { what: "two more event-loop lag samples", timeoutMs: 3_000 });
    const body = node.metrics.render();
    // An idle test process: every sample is far under a second.
    expect(sample(body, 'findings_process_event_loop_lag_seconds_bucket{le="1"}')).toBe(sample(body, "findings_process_event_loop_lag_seconds_count"));
  });

  test("/status keeps its flat counters", async () => {
    const status = (await (await fetch(`${node.adminUrl}/status`)).json()) as { counters: Record<string, number> };
    expect(status.counters).toMatchObject({ punch_joins: 2, udp_refusedLimits: 0, tls_links: 0, punch_joinsFull: 0, stun_answered: 0 });
  });

  test.skipIf(!promtool)("promtool check metrics accepts the node's /metrics", async () => {
    expect(await promtoolCheck(text)).toEqual({ code: 0, output: "" });
  });
});

warnIfNoPromtool();
