// The Grafana dashboard (ops/grafana/findings-dashboard.json): a dashboard model Grafana imports (a
// ${DS_PROMETHEUS} input, panels on the 24-column grid, targets on that data source), every query valid PromQL
// by promtool, and every findings_* name it reads declared in a real node's GET /metrics.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { embeddedDefaults } from "../../src/config/load.ts";
import { silentLogger } from "../../src/contracts/logger.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { promtool, warnIfNoPromtool } from "../contracts/promtool.ts";
import { tempDir } from "../helpers.ts";

interface Target {
  refId: string;
  expr: string;
  datasource: { type: string; uid: string };
}
interface Panel {
  id: number;
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  datasource?: { type: string; uid: string };
  targets?: Target[];
  panels?: Panel[];
}
interface Dashboard {
  __inputs: { name: string; type: string; pluginId: string }[];
  __requires: { type: string; id: string }[];
  uid: string;
  title: string;
  schemaVersion: number;
  panels: Panel[];
  templating: { list: { name: string; type: string; datasource: { uid: string }; query: { query: string } }[] };
}

const DASHBOARD_PATH = join(import.meta.dir, "../../ops/grafana/findings-dashboard.json");
const dashboard = (await Bun.file(DASHBOARD_PATH).json()) as Dashboard;
const DATASOURCE = { type: "prometheus", uid: "${DS_PROMETHEUS}" };

/** Every panel, those inside collapsed rows included. */
const allPanels = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]);
const targets = allPanels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, ...t })));
/** Every query the dashboard runs: panel targets and the variable's label_values(). */
const queries = [...targets.map((t) => t.expr), ...dashboard.templating.list.map((v) => v.query.query)];

const home = tempDir("findings-dashboard-");
let node: FindingsNode;
let metricsText: string;

beforeAll(async () => {
  const config = { ...embeddedDefaults(), host: "127.0.0.1", server_uport: 0, server_tport: 0, admin: "127.0.0.1:0", public: true, stakes: { "app:chat": "addr-1" } };
  node = await createNode({ config, home: home.path, log: silentLogger });
  await node.start();
  metricsText = await (await fetch(`${node.adminUrl}/metrics`)).text();
});

afterAll(async () => {
  await node?.stop();
  home[Symbol.dispose]();
});

describe("Grafana dashboard", () => {
  test("is an importable dashboard model with a ${DS_PROMETHEUS} data source input", () => {
    expect(dashboard.__inputs).toContainEqual(expect.objectContaining({ name: "DS_PROMETHEUS", type: "datasource", pluginId: "prometheus" }));
    expect(dashboard.__requires).toContainEqual(expect.objectContaining({ type: "datasource", id: "prometheus" }));
    expect(dashboard.uid).toMatch(/^[a-z0-9-]{1,40}$/);
    expect(dashboard.title).not.toBe("");
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36);
    // Every panel type the dashboard uses is declared, so Grafana says what an import needs.
    const required = new Set(dashboard.__requires.filter((r) => r.type === "panel").map((r) => r.id));
    for (const p of allPanels) if (p.type !== "row") expect(required).toContain(p.type);
    for (const v of dashboard.templating.list) expect(v.datasource.uid).toBe("${DS_PROMETHEUS}");
  });

  test("panels have unique ids and sit on the 24-column grid without overlapping", () => {
    const ids = allPanels.map((p) => p.id);
    expect(new Set(ids).size).toBe(ids.length);
    const cells = new Set<string>();
    for (const p of allPanels) {
      const { x, y, w, h } = p.gridPos;
      expect(Number.isInteger(x) && Number.isInteger(y) && w > 0 && h > 0 && x + w <= 24).toBe(true);
      for (let i = x; i < x + w; i++) {
        for (let j = y; j < y + h; j++) {
          expect(cells.has(`${i},${j}`) ? `${p.title} overlaps at ${i},${j}` : "").toBe("");
          cells.add(`${i},${j}`);
        }
      }
    }
  });

  test("every query panel reads Prometheus through the input, with unique refIds", () => {
    for (const p of allPanels.filter((p) => p.type !== "row")) {
      expect(p.datasource).toEqual(DATASOURCE);
      expect(p.targets?.length ?? 0).toBeGreaterThan(0);
      const refIds = p.targets!.map((t) => t.refId);
      expect(new Set(refIds).size).toBe(refIds.length);
      for (const t of p.targets!) {
        expect(t.datasource).toEqual(DATASOURCE);
        expect(t.expr.trim()).not.toBe("");
      }
    }
  });

  test("covers what an operator watches: traffic, mesh, NAT class, punches, broker latency, process, refusals", () => {
    const all = queries.join("\n");
    const wanted = [
      "findings_stun_datagrams_total",
      "findings_quic_inbound_connections",
      "findings_mesh_links",
      "findings_mesh_candidates",
      "findings_mesh_bans",
      "findings_punch_brokered_total",
      "findings_punch_broker_seconds_bucket",
      "findings_nat_own_class",
      "findings_nat_self_probe_seconds_sum",
      "findings_process_resident_memory_bytes",
      "findings_process_cpu_seconds_total",
      "findings_process_open_fds",
      "findings_rpc_refused_total",
      "findings_quic_streams_failed_total",
    ];
    expect(wanted.filter((name) => !new RegExp(`\\b${name}\\b`).test(all))).toEqual([]);
  });

  test("every findings_* name in the queries is a family of a real node's /metrics (histograms via _bucket, _sum, _count)", () => {
    const declared = new Map([...metricsText.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
    const used = new Set(queries.flatMap((q) => [...q.matchAll(/\bfindings_[a-z0-9_]+\b/g)].map((m) => m[0])));
    expect(used.size).toBeGreaterThan(25);
    const unknown = [...used].filter((name) => {
      const histogram = /^(.*)_(bucket|sum|count)$/.exec(name);
      if (histogram && declared.get(histogram[1]!) === "histogram") return false;
      // A histogram's bare name is no series at all: a query must name one of its parts.
      return !declared.has(name) || declared.get(name) === "histogram";
    });
    expect(unknown).toEqual([]);
  });

  test.skipIf(!promtool)("every query is valid PromQL (promtool check rules, Grafana's variables filled in)", async () => {
    using dir = tempDir("findings-dashboard-rules-");
    const fill = (q: string) => q.replaceAll("$__rate_interval", "5m").replaceAll("$instance", ".*");
    // JSON is YAML: one recording rule per query.
    const rules = { groups: [{ name: "dashboard", rules: targets.map((t, i) => ({ record: `dashboard:query_${i}`, expr: fill(t.expr) })) }] };
    const file = join(dir.path, "rules.json");
    writeFileSync(file, JSON.stringify(rules));
    const p = Bun.spawn([promtool!, "check", "rules", file], { stdout: "pipe", stderr: "pipe" });
    const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
    expect({ code, output: (out + err).trim() }).toEqual({ code: 0, output: `Checking ${file}\n  SUCCESS: ${targets.length} rules found` });
  });
});

warnIfNoPromtool();
