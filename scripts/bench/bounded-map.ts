// Benchmark: inserts per second into a full bounded table, the old way (a Map whose oldest entry is evicted with
// `map.delete(map.keys().next().value)`) against BoundedMap (src/contracts/bounded-map.ts), in one process.
//
//   bun scripts/bench/bounded-map.ts [--ms 1500] [--json]
//
// Per cap (1,000 / 10,000 / 65,536 entries, the Binding responder's): fill the table, then insert a stream of
// fresh string keys (each evicts the oldest) — first `cap` inserts untimed, so the runtime's table reaches its
// steady mix of live and deleted slots, then as many as fit in `--ms` milliseconds, timed. Both variants pay the
// same key formatting. Figures on a busy machine are noisy; compare the two columns of one invocation.
import { BoundedMap } from "../../src/contracts/index.ts";
import { argValue, round2 } from "./args.ts";

const CAPS = [1_000, 10_000, 65_536];
const timedMs = Number(argValue("--ms") ?? 1500);
const json = process.argv.includes("--json");

interface Table {
  insert(key: string): void;
}

function oldWay(cap: number): Table {
  const m = new Map<string, number>();
  return {
    insert(key) {
      if (m.size >= cap) m.delete(m.keys().next().value!);
      m.set(key, 1);
    },
  };
}

function bounded(cap: number): Table {
  const m = new BoundedMap<string, number>(cap);
  return { insert: (key) => void m.set(key, 1) };
}

/** Inserts per second at the cap. */
function measure(t: Table, cap: number): number {
  let i = 0;
  for (; i < 2 * cap; i++) t.insert(`k${i}`); // fill, then one cap's worth of evictions untimed
  const start = performance.now();
  const deadline = start + timedMs;
  let n = 0;
  while (true) {
    for (let j = 0; j < 256; j++) t.insert(`k${i++}`);
    n += 256;
    if (performance.now() >= deadline) break;
  }
  return n / ((performance.now() - start) / 1000);
}

const rows = CAPS.map((cap) => {
  const old = measure(oldWay(cap), cap);
  const now = measure(bounded(cap), cap);
  return { cap, oldInsertsPerS: Math.round(old), boundedInsertsPerS: Math.round(now), oldUsPerInsert: round2(1e6 / old), boundedUsPerInsert: round2(1e6 / now) };
});

if (json) console.log(JSON.stringify(rows));
else {
  console.log("cap       old inserts/s (µs each)   BoundedMap inserts/s (µs each)");
  for (const r of rows) {
    console.log(`${String(r.cap).padEnd(9)} ${`${r.oldInsertsPerS} (${r.oldUsPerInsert})`.padEnd(25)} ${r.boundedInsertsPerS} (${r.boundedUsPerInsert})`);
  }
}
