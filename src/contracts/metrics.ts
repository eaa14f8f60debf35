// Metrics: counters, gauges and histograms with labels, rendered in the Prometheus text exposition format
// (version 0.0.4, https://prometheus.io/docs/instrumenting/exposition_formats/). Names follow the
// Prometheus naming practice: snake_case, the `findings_` prefix, `_total` on counters, the unit last.
import { renderFamily, type FamilySnapshot } from "./metrics-text.ts";

export const PROMETHEUS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8";

/** Latency buckets in seconds, 1 ms to 10 s: a QUIC request on loopback takes ~1 ms, REQUEST_TIMEOUT_MS is 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

export type LabelValues<L extends string> = Readonly<Record<L, string | number>>;

export interface FamilyOptions<L extends string> {
  /** `findings_` + snake_case; counters end in `_total`, measurements end in their unit (`_seconds`). */
  name: string;
  /** One line saying what is counted (the HELP text). */
  help: string;
  labelNames?: readonly L[];
}

export interface PulledFamilyOptions<L extends string> extends FamilyOptions<L> {
  /** Reads the values at each render from where they are kept (a service's own counters); the samples it
   *  emits replace the family's samples. */
  collect?: (emit: (labels: LabelValues<L>, value: number) => void) => void;
}

export interface HistogramOptions<L extends string> extends FamilyOptions<L> {
  /** Upper bounds, ascending. @default LATENCY_BUCKETS_SECONDS */
  buckets?: readonly number[];
}

export interface Counter<L extends string = never> {
  /** Adds `by` (≥ 0). @default by 1 */
  inc(labels?: LabelValues<L>, by?: number): void;
  get(labels?: LabelValues<L>): number;
}

export interface Gauge<L extends string = never> {
  set(labels: LabelValues<L>, value: number): void;
  inc(labels?: LabelValues<L>, by?: number): void;
  dec(labels?: LabelValues<L>, by?: number): void;
  get(labels?: LabelValues<L>): number;
}

export interface Histogram<L extends string = never> {
  observe(labels: LabelValues<L>, value: number): void;
  /** Starts a measurement; the returned function observes the seconds since, and returns them. Labels known
   *  only at the end (the NAT class a probe found, the strategy a punch took) are given to that function; each
   *  call observes once more, so one timer can close several outcomes of one request. */
  startTimer(labels?: Partial<LabelValues<L>>): (endLabels?: Partial<LabelValues<L>>) => number;
  /** Observations so far and their sum. */
  get(labels?: LabelValues<L>): { count: number; sum: number };
}

export interface MetricsRegistry {
  counter<L extends string = never>(opts: PulledFamilyOptions<L>): Counter<L>;
  gauge<L extends string = never>(opts: PulledFamilyOptions<L>): Gauge<L>;
  histogram<L extends string = never>(opts: HistogramOptions<L>): Histogram<L>;
  /** The whole registry as Prometheus text, families in registration order. */
  render(): string;
}

const METRIC_NAME = /^findings_[a-z0-9]+(_[a-z0-9]+)*$/;
const LABEL_NAME = /^[a-z][a-z0-9_]*$/;

interface Family {
  snapshot(): FamilySnapshot;
}

export function createMetricsRegistry(): MetricsRegistry {
  const families = new Map<string, Family>();

  function register(kind: "counter" | "gauge" | "histogram", opts: FamilyOptions<string>): string[] {
    const { name, help } = opts;
    const labelNames = [...(opts.labelNames ?? [])];
    if (!METRIC_NAME.test(name)) throw new TypeError(`Cannot register metric ${name}: the name must be findings_ plus snake_case`);
    if ((kind === "counter") !== name.endsWith("_total")) throw new TypeError(`Cannot register metric ${name}: counters and only counters end in _total`);
    if (kind === "histogram" && /_(bucket|sum|count)$/.test(name)) throw new TypeError(`Cannot register metric ${name}: a histogram name may not end in _bucket, _sum or _count`);
    if (families.has(name)) throw new TypeError(`Cannot register metric ${name}: the name is taken`);
    if (help.trim() === "") throw new TypeError(`Cannot register metric ${name}: the help text is empty`);
    for (const l of labelNames) {
      if (!LABEL_NAME.test(l) || (kind === "histogram" && l === "le")) throw new TypeError(`Cannot register metric ${name}: label ${JSON.stringify(l)} is not allowed`);
    }
    if (new Set(labelNames).size !== labelNames.length) throw new TypeError(`Cannot register metric ${name}: a label name repeats`);
    return labelNames;
  }

  function keyOf(name: string, labelNames: string[], labels: Readonly<Record<string, string | number>> | undefined): { key: string; values: string[] } {
    const given = labels ?? {};
    const keys = Object.keys(given);
    if (keys.length !== labelNames.length || labelNames.some((l) => !(l in given))) {
      throw new TypeError(`Cannot record metric ${name}: labels must be exactly [${labelNames.join(", ")}]: current value is [${keys.join(", ")}]`);
    }
    const values = labelNames.map((l) => String(given[l]));
    return { key: values.join("\u0000"), values };
  }

  function scalarFamily(kind: "counter" | "gauge", opts: PulledFamilyOptions<string>) {
    const labelNames = register(kind, opts);
    const samples = new Map<string, { values: string[]; value: number }>();
    const add = (labels: LabelValues<string> | undefined, by: number, set = false) => {
      const { key, values } = keyOf(opts.name, labelNames, labels);
      const s = samples.get(key);
      if (s) s.value = set ? by : s.value + by;
      else samples.set(key, { values, value: by });
    };
    families.set(opts.name, {
      snapshot() {
        if (opts.collect) {
          samples.clear();
          opts.collect((labels, value) => add(labels, value, true));
        }
        // A family without labels always has its one sample, 0 until something happens.
        const list = labelNames.length === 0 && samples.size === 0 ? [{ values: [], value: 0 }] : [...samples.values()];
        return { kind, name: opts.name, help: opts.help, labelNames, samples: list };
      },
    });
    return {
      add,
      get: (labels?: LabelValues<string>) => samples.get(keyOf(opts.name, labelNames, labels).key)?.value ?? 0,
    };
  }

  return {
    counter(opts) {
      const f = scalarFamily("counter", opts as PulledFamilyOptions<string>);
      return {
        inc(labels, by = 1) {
          if (!(by >= 0)) throw new RangeError(`Cannot increase counter ${opts.name}: the step must be 0 or more: current value is ${by}`);
          f.add(labels, by);
        },
        get: (labels) => f.get(labels),
      };
    },
    gauge(opts) {
      const f = scalarFamily("gauge", opts as PulledFamilyOptions<string>);
      return {
        set: (labels, value) => f.add(labels, value, true),
        inc: (labels, by = 1) => f.add(labels, by),
        dec: (labels, by = 1) => f.add(labels, -by),
        get: (labels) => f.get(labels),
      };
    },
    histogram(opts) {
      const labelNames = register("histogram", opts as FamilyOptions<string>);
      const buckets = [...(opts.buckets ?? LATENCY_BUCKETS_SECONDS)];
      if (buckets.length === 0 || buckets.some((b, i) => !Number.isFinite(b) || (i > 0 && b <= buckets[i - 1]!))) {
        throw new TypeError(`Cannot register metric ${opts.name}: buckets must be finite and ascending`);
      }
      const series = new Map<string, { values: string[]; counts: number[]; count: number; sum: number }>();
      const observe = (labels: LabelValues<string> | undefined, value: number) => {
        const { key, values } = keyOf(opts.name, labelNames, labels);
        let s = series.get(key);
        if (!s) series.set(key, (s = { values, counts: buckets.map(() => 0), count: 0, sum: 0 }));
        // Per-bucket counts here; the text format's cumulative counts are summed at render time.
        const i = buckets.findIndex((b) => value <= b);
        if (i >= 0) s.counts[i]!++;
        s.count++;
        s.sum += value;
      };
      families.set(opts.name, {
        snapshot() {
          const list = labelNames.length === 0 && series.size === 0 ? [{ values: [], counts: buckets.map(() => 0), count: 0, sum: 0 }] : [...series.values()];
          return { kind: "histogram", name: opts.name, help: opts.help, labelNames, buckets, series: list };
        },
      });
      return {
        observe,
        startTimer(labels) {
          const t0 = performance.now();
          return (endLabels) => {
            const seconds = (performance.now() - t0) / 1000;
            observe({ ...labels, ...endLabels } as LabelValues<string>, seconds);
            return seconds;
          };
        },
        get(labels) {
          const s = series.get(keyOf(opts.name, labelNames, labels).key);
          return { count: s?.count ?? 0, sum: s?.sum ?? 0 };
        },
      };
    },
    render() {
      return [...families.values()].map((f) => renderFamily(f.snapshot())).join("");
    },
  };
}
