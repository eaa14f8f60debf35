// The Prometheus text exposition format, version 0.0.4: HELP and TYPE lines, then one line per sample;
// histograms as cumulative `_bucket{le}` lines plus `_sum` and `_count`.

export type FamilySnapshot =
  | {
    kind: "counter" | "gauge";
    name: string;
    help: string;
    labelNames: string[];
    samples: { values: string[]; value: number }[];
  }
  | {
    kind: "histogram";
    name: string;
    help: string;
    labelNames: string[];
    buckets: number[];
    /** `counts[i]`: observations in (buckets[i-1], buckets[i]], not cumulative. */
    series: { values: string[]; counts: number[]; count: number; sum: number }[];
  };

// HELP text escapes backslash and newline; label values also escape the double quote.
const escapeHelp = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n");
const escapeLabel = (s: string) => s.replace(/\\/g, "\\\\").replace(/\n/g, "\\n").replace(/"/g, '\\"');

function formatValue(v: number): string {
  if (Number.isNaN(v)) return "NaN";
  if (v === Infinity) return "+Inf";
  if (v === -Infinity) return "-Inf";
  return String(v);
}

function labelText(names: string[], values: string[], extra?: [string, string]): string {
  const pairs = names.map((n, i) => `${n}="${escapeLabel(values[i]!)}"`);
  if (extra) pairs.push(`${extra[0]}="${extra[1]}"`);
  return pairs.length ? `{${pairs.join(",")}}` : "";
}

export function renderFamily(f: FamilySnapshot): string {
  const lines = [`# HELP ${f.name} ${escapeHelp(f.help)}`, `# TYPE ${f.name} ${f.kind}`];
  if (f.kind === "histogram") {
    for (const s of f.series) {
      let cumulative = 0;
      f.buckets.forEach((b, i) => {
        cumulative += s.counts[i]!;
        lines.push(`${f.name}_bucket${labelText(f.labelNames, s.values, ["le", formatValue(b)])} ${cumulative}`);
      });
      lines.push(`${f.name}_bucket${labelText(f.labelNames, s.values, ["le", "+Inf"])} ${s.count}`);
      lines.push(`${f.name}_sum${labelText(f.labelNames, s.values)} ${formatValue(s.sum)}`);
      lines.push(`${f.name}_count${labelText(f.labelNames, s.values)} ${s.count}`);
    }
  } else {
    for (const s of f.samples) lines.push(`${f.name}${labelText(f.labelNames, s.values)} ${formatValue(s.value)}`);
  }
  return lines.join("\n") + "\n";
}
