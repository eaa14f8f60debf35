// The network simulator (src/sim): real mesh cores for N nodes in one process on a virtual clock.
//   bun scripts/sim/mesh.ts --nodes 1000 --seeds 3 --minutes 10 --churn 10 --sybil 0.2 --sybil-prefixes 8 \
//     --kinds 100 --seed 1 [--sybil-spread] [--json] [--plot DIR] [--attacks forge,find,keycheck,crowd] [--join-s S] [--sample-s S]
//     [--mesh-out N --mesh-in N --shortlist N --switch-s S --share N --help-when-starved]
import { parseArgs } from "node:util";
import { runSimulation, writePlots, type Attack } from "../../src/sim/index.ts";

const { values: v } = parseArgs({
  options: {
    nodes: { type: "string", default: "100" },
    seeds: { type: "string", default: "3" },
    minutes: { type: "string", default: "10" },
    churn: { type: "string", default: "0" },
    sybil: { type: "string", default: "0" },
    "sybil-prefixes": { type: "string", default: "8" },
    "sybil-spread": { type: "boolean", default: false },
    kinds: { type: "string", default: "100" },
    seed: { type: "string", default: "1" },
    json: { type: "boolean", default: false },
    plot: { type: "string" },
    "join-s": { type: "string", default: "10" },
    "sample-s": { type: "string", default: "10" },
    "mesh-out": { type: "string" },
    "mesh-in": { type: "string" },
    shortlist: { type: "string" },
    "switch-s": { type: "string" },
    share: { type: "string" },
    "help-when-starved": { type: "boolean", default: false },
    attacks: { type: "string", default: "forge,find,keycheck,crowd" },
  },
});
const num = (s: string | undefined) => (s === undefined ? undefined : Number(s));
const mesh = Object.fromEntries(
  Object.entries({ meshOut: num(v["mesh-out"]), meshIn: num(v["mesh-in"]), shortlist: num(v.shortlist), switchIntervalMs: v["switch-s"] ? Number(v["switch-s"]) * 1000 : undefined, shareCount: num(v.share) }).filter(([, x]) => x !== undefined),
);
if (v["help-when-starved"]) Object.assign(mesh, { timing: { helpWhenStarved: true } });
const result = await runSimulation({
  nodes: Number(v.nodes),
  seeds: Number(v.seeds),
  minutes: Number(v.minutes),
  churn: Number(v.churn),
  sybil: Number(v.sybil),
  sybilPrefixes: Number(v["sybil-prefixes"]),
  sybilSpread: v["sybil-spread"],
  kinds: Number(v.kinds),
  seed: Number(v.seed),
  joinSeconds: Number(v["join-s"]),
  // Each sample reads every node's status (and starts 5 searches): long runs may sample less often.
  sampleSeconds: Number(v["sample-s"]),
  attacks: v.attacks.split(",") as Attack[],
  mesh,
  onSample: (s) => {
    process.stderr.write(`t=${s.t}s live=${s.live} serving=${s.serving}/${s.honest} converged=${(s.converged * 100).toFixed(1)}% short(out/pool)=${s.shortOut}/${s.shortPool} links=${s.meanLinks.toFixed(1)} wall=${s.wallSeconds.toFixed(0)}s cpu=${s.cpuSeconds.toFixed(0)}s heap=${s.heapMiB}MiB rss=${s.rssMiB}MiB\n`);
  },
});
if (v.plot) writePlots(v.plot, result);
const { series, hops, load, ...figures } = result;
if (v.json) console.log(JSON.stringify({ ...figures, mesh }));
else console.log(figures);
process.exit(0);
