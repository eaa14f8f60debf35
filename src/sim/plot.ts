// Plain SVG charts of a simulation run: convergence over time, the hops distribution of successful
// searches, and requests per node per minute (sorted, one bar a node).
import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { SimResult } from "./run.ts";

const W = 640;
const H = 360;
const M = { l: 60, r: 20, t: 40, b: 50 };

const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");

function frame(title: string, xLabel: string, yLabel: string, xMax: number, yMax: number, body: string, xTicks = true): string {
  const ticks: string[] = [];
  for (let i = 0; i <= 5; i++) {
    const y = M.t + (H - M.t - M.b) * (1 - i / 5);
    const x = M.l + (W - M.l - M.r) * (i / 5);
    ticks.push(`<line x1="${M.l}" x2="${W - M.r}" y1="${y}" y2="${y}" stroke="#eee"/><text x="${M.l - 6}" y="${y + 4}" text-anchor="end" font-size="11">${fmt((yMax * i) / 5)}</text>`);
    if (xTicks) ticks.push(`<text x="${x}" y="${H - M.b + 16}" text-anchor="middle" font-size="11">${fmt((xMax * i) / 5)}</text>`);
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="${W / 2}" y="22" text-anchor="middle" font-size="15">${esc(title)}</text>
${ticks.join("\n")}
<line x1="${M.l}" x2="${M.l}" y1="${M.t}" y2="${H - M.b}" stroke="black"/><line x1="${M.l}" x2="${W - M.r}" y1="${H - M.b}" y2="${H - M.b}" stroke="black"/>
<text x="${W / 2}" y="${H - 12}" text-anchor="middle" font-size="12">${esc(xLabel)}</text>
<text x="16" y="${H / 2}" text-anchor="middle" font-size="12" transform="rotate(-90 16 ${H / 2})">${esc(yLabel)}</text>
${body}
</svg>
`;
}

function fmt(x: number): string {
  return Math.abs(x) >= 100 ? x.toFixed(0) : Math.abs(x) >= 10 ? x.toFixed(1).replace(/\.0$/, "") : x.toFixed(2).replace(/\.?0+$/, "");
}

const px = (x: number, xMax: number) => M.l + ((W - M.l - M.r) * x) / (xMax || 1);
const py = (y: number, yMax: number) => Math.round((H - M.b - ((H - M.t - M.b) * y) / (yMax || 1)) * 10) / 10;

export function convergenceSvg(r: SimResult): string {
  const xMax = r.simulatedSeconds || 1;
  const pts = r.series.map((s) => `${px(s.t, xMax).toFixed(1)},${py(s.converged * 100, 100).toFixed(1)}`).join(" ");
  const mark = r.convergedAtS !== null ? `<line x1="${px(r.convergedAtS, xMax)}" x2="${px(r.convergedAtS, xMax)}" y1="${M.t}" y2="${H - M.b}" stroke="#c33" stroke-dasharray="4"/>` : "";
  return frame(`Converged honest nodes, ${r.nodes} nodes, churn ${r.churn} %/min, sybils ${r.sybil * 100} %`, "simulated seconds", "% converged", xMax, 100, `${mark}<polyline fill="none" stroke="#36c" stroke-width="2" points="${pts}"/>`);
}

export function hopsSvg(r: SimResult): string {
  const counts = [0, 0, 0, 0, 0];
  for (const h of r.hops) counts[Math.min(4, h)]!++;
  const yMax = Math.max(1, ...counts);
  const bw = (W - M.l - M.r) / counts.length;
  const bars = counts
    .map((c, i) => `<rect x="${M.l + i * bw + 8}" y="${py(c, yMax)}" width="${bw - 16}" height="${H - M.b - py(c, yMax)}" fill="#36c"/><text x="${M.l + i * bw + bw / 2}" y="${H - M.b + 30}" text-anchor="middle" font-size="12">${i === 4 ? "4+" : i} hops</text>`)
    .join("\n");
  return frame(`Hops to the first honest server, ${r.hops.length} successful searches`, "", "searches", counts.length, yMax, bars, false);
}

export function loadSvg(r: SimResult): string {
  const xs = [...r.load].sort((a, b) => b - a);
  const yMax = Math.max(1, ...xs);
  const bw = (W - M.l - M.r) / Math.max(1, xs.length);
  const bars = xs.map((y, i) => `<rect x="${(M.l + i * bw).toFixed(2)}" y="${py(y, yMax).toFixed(1)}" width="${Math.max(0.5, bw).toFixed(2)}" height="${(H - M.b - py(y, yMax)).toFixed(1)}" fill="#3a3"/>`).join("");
  return frame(`Requests per honest node per minute (steady state), mean ${r.requestsPerNodePerMin.mean}`, "nodes, most loaded first", "requests / min", xs.length, yMax, bars);
}

export function writePlots(dir: string, r: SimResult): void {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, "convergence.svg"), convergenceSvg(r));
  writeFileSync(join(dir, "hops.svg"), hopsSvg(r));
  writeFileSync(join(dir, "load.svg"), loadSvg(r));
}
