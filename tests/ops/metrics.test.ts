// GET /metrics of a real node: Prometheus names and HELP for every family, labels instead of glued names,
// a latency histogram and punch families fed by real QUIC requests and a real punch between two apps, and
// promtool's approval when it is installed.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { embeddedDefaults } from "../../src/config/load.ts";
import { silentLogger } from "../../src/contracts/logger.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { createPunchClient, type PunchClient } from "../../src/punch/punch-client.ts";
import { quicWhoami } from "../../src/transport/quic/whoami.ts";
import { promtool, promtoolCheck, warnIfNoPromtool } from "../contracts/promtool.ts";
import { tempDir } from "../helpers.ts";

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
    expect(text).toMatch(/^findings_quic_request_duration_seconds_bucket\{method="app.whoami",le="\+Inf"\} 1$/m);
    expect(text).toMatch(/^findings_rpc_requests_total\{method="app.whoami"\} 1$/m);
    expect(text).toMatch(/^findings_quic_request_duration_seconds_count\{method="app.whoami"\} 1$/m);
    expect(text).toMatch(/^findings_quic_request_duration_seconds_count\{method="punch.request"\} 1$/m);
  });

  test("the punch between two apps shows by strategy, and the pool by kind and NAT class", () => {
    expect(text).toMatch(/^findings_punch_brokered_total\{strategy="direct"\} 1$/m);
    expect(text).toMatch(/^findings_punch_pool_members\{kind="app:chat",nat_class="public"\} 2$/m);
    expect(text).toMatch(/^findings_punch_joins_total\{result="joined"\} 2$/m);
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
