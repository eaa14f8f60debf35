// The metrics registry: Prometheus names enforced at registration, text format 0.0.4 on render, checked by
// promtool when it is installed.
import { describe, expect, test } from "bun:test";
import { createMetricsRegistry } from "../../src/contracts/metrics.ts";
import { promtool, promtoolCheck, warnIfNoPromtool } from "./promtool.ts";

function sampleRegistry() {
  const r = createMetricsRegistry();
  const requests = r.counter({ name: "findings_quic_requests_total", help: "QUIC requests served.", labelNames: ["method", "status"] });
  const links = r.gauge({ name: "findings_mesh_links", help: "Mesh links open now.", labelNames: ["direction"] });
  const latency = r.histogram({ name: "findings_quic_request_duration_seconds", help: "Time from request to answer.", labelNames: ["method"], buckets: [0.01, 0.1, 1] });
  const plain = r.counter({ name: "findings_stun_answered_total", help: 'Binding requests answered (a "quote" and a \\ backslash\nsecond line).' });
  return { r, requests, links, latency, plain };
}

describe("metrics registry", () => {
  test("renders HELP, TYPE and labelled samples in registration order", () => {
    const { r, requests, links, plain } = sampleRegistry();
    requests.inc({ method: "whoami", status: "ok" });
    requests.inc({ method: "whoami", status: "ok" }, 2);
    requests.inc({ method: "app.join", status: 'bad "x"\n' });
    links.set({ direction: "out" }, 3);
    links.dec({ direction: "out" });
    plain.inc();
    const text = r.render();
    expect(text).toStartWith(
      [
        "# HELP findings_quic_requests_total QUIC requests served.",
        "# TYPE findings_quic_requests_total counter",
        'findings_quic_requests_total{method="whoami",status="ok"} 3',
        'findings_quic_requests_total{method="app.join",status="bad \\"x\\"\\n"} 1',
        "# HELP findings_mesh_links Mesh links open now.",
        "# TYPE findings_mesh_links gauge",
        'findings_mesh_links{direction="out"} 2',
      ].join("\n"),
    );
    expect(text).toContain('# HELP findings_stun_answered_total Binding requests answered (a "quote" and a \\\\ backslash\\nsecond line).\n');
    expect(text).toContain("\nfindings_stun_answered_total 1\n");
    expect(requests.get({ method: "whoami", status: "ok" })).toBe(3);
  });

  test("histograms render cumulative buckets, +Inf, _sum and _count", () => {
    const { r, latency } = sampleRegistry();
    for (const v of [0.005, 0.05, 0.05, 2]) latency.observe({ method: "whoami" }, v);
    const text = r.render();
    expect(text).toContain(
      [
        'findings_quic_request_duration_seconds_bucket{method="whoami",le="0.01"} 1',
        'findings_quic_request_duration_seconds_bucket{method="whoami",le="0.1"} 3',
        'findings_quic_request_duration_seconds_bucket{method="whoami",le="1"} 3',
        'findings_quic_request_duration_seconds_bucket{method="whoami",le="+Inf"} 4',
        'findings_quic_request_duration_seconds_sum{method="whoami"} 2.105',
        'findings_quic_request_duration_seconds_count{method="whoami"} 4',
      ].join("\n"),
    );
    expect(latency.get({ method: "whoami" })).toEqual({ count: 4, sum: 2.105 });
  });

  test("startTimer observes the elapsed seconds", async () => {
    const { latency } = sampleRegistry();
    const done = latency.startTimer({ method: "slow" });
    await Bun.sleep(20); // real time passing is what the timer measures
    const seconds = done();
    expect(seconds).toBeGreaterThanOrEqual(0.015);
    expect(latency.get({ method: "slow" })).toEqual({ count: 1, sum: seconds });
  });

  test("a timer takes the labels known only at its end, once per outcome, and still insists on every label", async () => {
    const r = createMetricsRegistry();
    const broker = r.histogram({ name: "findings_punch_broker_seconds", help: "x", labelNames: ["kind", "strategy"] });
    const done = broker.startTimer({ kind: "app:chat" });
    await Bun.sleep(10);
    const first = done({ strategy: "direct" });
    const second = done({ strategy: "sym-to-cone-spray" });
    expect(first).toBeGreaterThanOrEqual(0.008);
    expect(second).toBeGreaterThanOrEqual(first);
    expect(broker.get({ kind: "app:chat", strategy: "direct" })).toEqual({ count: 1, sum: first });
    expect(broker.get({ kind: "app:chat", strategy: "sym-to-cone-spray" })).toEqual({ count: 1, sum: second });
    expect(() => broker.startTimer()({ strategy: "direct" })).toThrow("labels must be exactly [kind, strategy]");
    expect(broker.get({ kind: "app:chat", strategy: "direct" }).count).toBe(1);
  });

  test("a pulled family reads its samples at each render", () => {
    const r = createMetricsRegistry();
    const source = { refused: 1, full: 0 };
    r.counter({
      name: "findings_punch_joins_refused_total",
      help: "app.join requests refused.",
      labelNames: ["reason"],
      collect: (emit) => {
        for (const [reason, n] of Object.entries(source)) emit({ reason }, n);
      },
    });
    expect(r.render()).toContain('findings_punch_joins_refused_total{reason="refused"} 1\nfindings_punch_joins_refused_total{reason="full"} 0\n');
    source.full = 4;
    expect(r.render()).toContain('findings_punch_joins_refused_total{reason="full"} 4\n');
  });

  test("names, help texts and labels that break the conventions are refused at registration", () => {
    const r = createMetricsRegistry();
    const bad: [() => unknown, string][] = [
      [() => r.counter({ name: "findings_udp_refusedLimits_total", help: "x" }), "snake_case"],
      [() => r.counter({ name: "udp_refused_total", help: "x" }), "snake_case"],
      [() => r.counter({ name: "findings_udp_refused", help: "x" }), "_total"],
      [() => r.gauge({ name: "findings_links_total", help: "x" }), "_total"],
      [() => r.histogram({ name: "findings_rtt_count", help: "x" }), "_count"],
      [() => r.gauge({ name: "findings_links", help: " " }), "help text"],
      [() => r.gauge({ name: "findings_links", help: "x", labelNames: ["Direction"] }), "label"],
      [() => r.histogram({ name: "findings_rtt_seconds", help: "x", labelNames: ["le"] }), "label"],
      [() => r.histogram({ name: "findings_rtt_seconds", help: "x", buckets: [1, 0.5] }), "ascending"],
    ];
    for (const [register, why] of bad) expect(register).toThrow(why);
    r.gauge({ name: "findings_links", help: "x" });
    expect(() => r.gauge({ name: "findings_links", help: "x" })).toThrow("taken");
  });

  test("recording with the wrong labels or a negative counter step throws", () => {
    const { requests } = sampleRegistry();
    expect(() => requests.inc({ method: "whoami" } as never)).toThrow("labels must be exactly [method, status]");
    expect(() => requests.inc({ method: "whoami", status: "ok" }, -1)).toThrow(RangeError);
  });

  test.skipIf(!promtool)("promtool check metrics accepts the rendered text", async () => {
    const { r, requests, links, latency, plain } = sampleRegistry();
    requests.inc({ method: "whoami", status: "ok" });
    links.set({ direction: "in" }, 1);
    latency.observe({ method: "whoami" }, 0.2);
    plain.inc();
    const verdict = await promtoolCheck(r.render());
    expect(verdict).toEqual({ code: 0, output: "" });
  });

  test.skipIf(!promtool)("promtool flags a counter without _total (the check is real)", async () => {
    const verdict = await promtoolCheck("# HELP findings_x Things.\n# TYPE findings_x counter\nfindings_x 1\n");
    expect(verdict.output).toContain("counter metrics should have \"_total\" suffix");
  });
});

warnIfNoPromtool();
