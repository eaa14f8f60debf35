// One simulation run: start seeds, honest and hostile nodes, advance the virtual clock with churn,
// sample convergence and load, run searches from honest nodes, and sum it up in the figures the
// operators ask for (SimResult).
import { nodeIdOf } from "../identity/index.ts";
import type { MeshSummary } from "../mesh/index.ts";
import { METHOD } from "../rpc/index.ts";
import { kindName, SimNetwork, type Attack, type NetworkOptions, type SimNode } from "./network.ts";

export interface SimOptions extends Partial<Omit<NetworkOptions, "seed" | "kinds" | "sybilPrefixes">> {
  nodes: number;
  seeds: number;
  minutes: number;
  /** Percent of (honest, non-seed) nodes replaced per simulated minute. */
  churn: number;
  /** Fraction of nodes that are hostile. */
  sybil: number;
  sybilPrefixes: number;
  kinds: number;
  seed: number;
  /** Nodes join over this many seconds. @default 10 */
  joinSeconds?: number;
  /** Sampling period, s. @default 10 */
  sampleSeconds?: number;
  /** Searches started per sample in the steady state. @default 5 */
  findsPerSample?: number;
  /** Called after every sample (progress). */
  onSample?: (s: Sample) => void;
}

export interface Sample {
  t: number;
  live: number;
  honest: number;
  /** Fraction of live honest nodes that are converged (full mesh_out, ≥ 90 % of the shortlist). */
  converged: number;
  serving: number;
  /** Live honest nodes short of mesh_out outgoing links, and short of 90 % of the shortlist. */
  shortOut: number;
  shortPool: number;
  meanLinks: number;
  wallSeconds: number;
  /** CPU time of the process so far (user + system). */
  cpuSeconds: number;
  heapMiB: number;
  rssMiB: number;
}

export interface SimResult {
  nodes: number;
  seeds: number;
  churn: number;
  sybil: number;
  sybilPrefixes: number;
  kinds: number;
  seed: number;
  simulatedSeconds: number;
  wallSeconds: number;
  /** CPU time of the process (user + system): the wall time on an otherwise idle core. */
  cpuSeconds: number;
  convergedAtS: number | null;
  finalConverged: number;
  /** Over searches for kinds served by ≥ 1 % of the live honest nodes (the goal's scope). */
  findSuccess: number | null;
  /** Over every search (kinds with a single server too). */
  findSuccessAll: number | null;
  finds: number;
  medianHops: number | null;
  p99Hops: number | null;
  /** Requests each honest node received per minute in the second half of the run, searches apart. */
  requestsPerNodePerMin: { mean: number; max: number };
  /** The same with the searches' mesh.find requests counted (the simulator's searches: findsPerSample
   *  every sampleSeconds from random honest nodes). */
  requestsWithFindsPerNodePerMin: { mean: number; max: number; maxNonSeed: number };
  /** Upkeep requests each seed received per minute in the second half: newcomers' first contacts. */
  seedRequestsPerMin: { mean: number; max: number };
  /** Nodes that joined per minute in the second half (churn). */
  joinsPerMin: number;
  /** mesh.find requests (all nodes) per search started: the cost of one search. */
  requestsPerFind: number | null;
  /** Bytes sent and received per node per minute, searches included. */
  bytesPerNodePerMin: { mean: number; max: number };
  /** Mean requests per honest node per minute in the second half, by method (where the load comes from). */
  requestsByMethod: Record<string, number>;
  /** The honest node with the most upkeep requests in the second half: a seed or not, its age, its load by method. */
  busiest: { perMin: number; seed: boolean; ageS: number; byMethod: Record<string, number> } | null;
  eclipsedHonest: number;
  /** Links of each eclipsed node at the end (out / in), and whether it was the crowding victim. */
  eclipsedLinks: { out: number; in: number; victim: boolean }[];
  /** Most outgoing links one honest node holds to hostile nodes at the end. */
  hostileOutMax: number;
  bannedHonest: number;
  bannedHostile: number;
  /** Why honest nodes were banned (numbers and ids elided), and how many bans said so. */
  honestBanReasons: Record<string, number>;
  victimHostileLinks: number | null;
  heapMiB: number;
  rssMiB: number;
  timersFired: number;
  series: Sample[];
  hops: number[];
  load: number[];
}

interface Load {
  upkeep: number;
  find: number;
  byMethod: Record<string, number>;
  bytes: number;
  t: number;
}

const quantile = (xs: number[], q: number) => {
  if (!xs.length) return null;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))]!;
};

/** Heap and RSS now; `collect` runs a full garbage collection first (the live heap, not what the
 *  collector has not reclaimed yet). */
function heap(collect = false): { heap: number; rss: number } {
  if (collect) (globalThis as { Bun?: { gc(sync: boolean): void } }).Bun?.gc(true);
  const m = process.memoryUsage();
  return { heap: Math.round(m.heapUsed / 1048576), rss: Math.round(m.rss / 1048576) };
}

function cpuSince(cpu0: NodeJS.CpuUsage): number {
  const u = process.cpuUsage(cpu0);
  return (u.user + u.system) / 1e6;
}

export async function runSimulation(o: SimOptions): Promise<SimResult> {
  const wall0 = performance.now();
  const cpu0 = process.cpuUsage();
  const sim = new SimNetwork({ seed: o.seed, kinds: o.kinds, sybilPrefixes: Math.max(1, o.sybilPrefixes), sybilSpread: o.sybilSpread, attacks: o.attacks, mesh: o.mesh, shape: o.shape });
  const joinMs = (o.joinSeconds ?? 10) * 1000;
  const sampleMs = (o.sampleSeconds ?? 10) * 1000;
  const endMs = o.minutes * 60_000;
  const steadyFrom = endMs / 2;
  const hostileTotal = Math.round(o.nodes * o.sybil);
  const honestTotal = o.nodes - hostileTotal - o.seeds;
  for (let i = 0; i < o.seeds; i++) await sim.add("seed");
  // Joins: honest and hostile interleaved, spread over joinMs; the victim (first honest) joins first.
  const order: ("honest" | "hostile")[] = ["honest"];
  for (let h = 1, s = 0; h < honestTotal || s < hostileTotal; ) {
    if (s < hostileTotal && (h >= honestTotal || s / hostileTotal <= h / honestTotal)) (order.push("hostile"), s++);
    else (order.push("honest"), h++);
  }
  const shortlist = sim.o.mesh?.shortlist ?? 100;
  const meshOut = () => sim.seeds[0]!.mesh.status().mesh.maxOut;
  // Each sample reads every node's summary (counts and link ends: status() would format every candidate).
  const statuses = new Map<SimNode, MeshSummary>();
  const isHonest = (x: SimNode) => x.hostile === null;
  const fullOut = (st: MeshSummary) => st.role === "service" && st.out >= st.maxOut;
  const fullPool = (st: MeshSummary, live: number) => st.candidates >= 0.9 * Math.min(shortlist, live - 1);
  const series: Sample[] = [];
  let convergedAtS: number | null = null;
  const finds: { ok: boolean; hops: number | null; common: boolean }[] = [];
  let pendingFinds: Promise<void>[] = [];
  let loadAt: Map<SimNode, Load> | null = null;
  let findsAtLoad = 0;
  let churnDebt = 0;
  let joinsInWindow = 0;

  /** Requests a node received (served or refused), upkeep and searches apart: the searches are the
   *  simulator's own, so their load is given per search. */
  const requests = (x: SimNode) => {
    const s = x.net.router.stats();
    let upkeep = 0;
    let find = 0;
    const byMethod: Record<string, number> = {};
    const add = (m: string, v: number) => {
      byMethod[m] = (byMethod[m] ?? 0) + v;
      if (m === METHOD.mesh.find) find += v;
      else upkeep += v;
    };
    for (const [m, v] of Object.entries(s.calls)) add(m, v);
    for (const [m, r] of Object.entries(s.refused)) for (const v of Object.values(r)) add(m, v ?? 0);
    return { upkeep, find, byMethod };
  };

  function sample(): void {
    const live = sim.live();
    let conv = 0;
    let serving = 0;
    let links = 0;
    let honest = 0;
    let shortOut = 0;
    let shortPool = 0;
    for (const x of live) {
      const st = x.mesh.summary();
      statuses.set(x, st);
      if (!isHonest(x)) continue;
      honest++;
      if (st.role === "service") serving++;
      links += st.links.length;
      const out = fullOut(st);
      const pool = fullPool(st, live.length);
      if (!out) shortOut++;
      if (!pool) shortPool++;
      if (out && pool) conv++;
    }
    for (const x of [...statuses.keys()]) if (!x.alive) statuses.delete(x);
    const t = sim.seconds();
    const frac = honest ? conv / honest : 0;
    if (frac === 1 && convergedAtS === null && !joining) convergedAtS = t;
    const h = heap();
    const s: Sample = { t, live: live.length, honest, converged: frac, serving, shortOut, shortPool, meanLinks: honest ? links / honest : 0, wallSeconds: (performance.now() - wall0) / 1000, cpuSeconds: cpuSince(cpu0), heapMiB: h.heap, rssMiB: h.rss };
    series.push(s);
    o.onSample?.(s);
  }

  /** Hops from `from` to the nearest node whose own answer holds a live honest server of `kind`, by the
   *  candidates each node had when the searches of this sample started. */
  function hopsTo(from: SimNode, kind: string, kindsOf: (x: SimNode) => readonly { id: string; kinds: readonly string[] }[] | undefined): number | null {
    const holds = (x: SimNode) => {
      if (x.kind === kind && isHonest(x)) return true;
      return !!kindsOf(x)?.some((c) => c.kinds.includes(kind) && isLiveHonestId(c.id));
    };
    let frontier = [from];
    const seen = new Set([from]);
    for (let h = 0; h <= 6 && frontier.length; h++) {
      if (frontier.some(holds)) return h;
      const next: SimNode[] = [];
      for (const x of frontier) {
        for (const l of statuses.get(x)?.links ?? []) {
          const y = sim.byId.get(l.peer);
          if (y?.alive && !seen.has(y)) (seen.add(y), next.push(y));
        }
      }
      frontier = next;
    }
    return null;
  }

  const isLiveHonestId = (id: string) => {
    const y = sim.byId.get(id);
    return !!y && y.alive && isHonest(y);
  };

  function startFinds(): void {
    const askers = sim.live().filter((x) => isHonest(x) && statuses.get(x)?.role === "service");
    if (!askers.length) return;
    // Each node's candidates as the searches of this sample start, read for the nodes a search's
    // hops reach (most stop at the asker): the searches start after every hopsTo of the sample ran.
    const kinds = new Map<SimNode, { id: string; kinds: readonly string[] }[]>();
    const kindsOf = (x: SimNode) => {
      if (!statuses.has(x)) return undefined;
      let k = kinds.get(x);
      if (!k) kinds.set(x, (k = x.mesh.candidateKinds()));
      return k;
    };
    const started: { from: SimNode; kind: string; hops: number | null; common: boolean }[] = [];
    for (let i = 0; i < (o.findsPerSample ?? 5) && askers.length; i++) {
      const from = askers[Math.floor(sim.rand() * askers.length)]!;
      const kind = kindName(Math.floor(sim.rand() * o.kinds));
      const servers = sim.live().filter((x) => x.kind === kind && isHonest(x));
      if (!servers.length) continue;
      const hops = hopsTo(from, kind, kindsOf);
      started.push({ from, kind, hops, common: servers.length >= 0.01 * askers.length });
    }
    for (const { from, kind, hops, common } of started) {
      pendingFinds.push(
        from.mesh.find(kind).then(
          (r) => void finds.push({ ok: r.records.some((rec) => isLiveHonestId(nodeIdOf(rec.publicKey))), hops, common }),
          () => void finds.push({ ok: false, hops, common }),
        ),
      );
    }
  }


  function snapshotLoad(): Map<SimNode, Load> {
    const m = new Map<SimNode, Load>();
    for (const x of sim.live()) m.set(x, { ...requests(x), bytes: sim.bytes.get(x.ip) ?? 0, t: sim.clock.now() });
    return m;
  }

  async function churn(stepMs: number): Promise<void> {
    if (!o.churn) return;
    const pool = sim.live().filter((x) => isHonest(x) && !x.seed);
    churnDebt += (pool.length * o.churn * stepMs) / 100 / 60_000;
    while (churnDebt >= 1 && pool.length) {
      churnDebt -= 1;
      const victim = sim.victim;
      const candidates = pool.filter((x) => x !== victim);
      const gone = candidates[Math.floor(sim.rand() * candidates.length)]!;
      pool.splice(pool.indexOf(gone), 1);
      await sim.kill(gone);
      await sim.add("honest");
      if (loadAt) joinsInWindow++;
    }
  }

  // Joins spread over joinMs.
  const gap = order.length ? joinMs / order.length : 0;
  let joined = 0;
  let joinSample = sampleMs;
  let joining = true;
  for (const role of order) {
    await sim.add(role);
    joined++;
    if (gap >= 1 && joined % Math.max(1, Math.round(1 / gap)) === 0) await sim.clock.advance(Math.max(1, Math.round(gap)));
    // Long joins (many nodes) are sampled as they go: progress, and the memory of each step.
    if (sim.clock.now() - sim.startedAt >= joinSample && joinSample < joinMs) (sample(), (joinSample += sampleMs));
  }
  joining = false;

  while (sim.clock.now() - sim.startedAt < endMs) {
    const at = sim.clock.now() - sim.startedAt;
    const step = Math.min(sampleMs - (at % sampleMs), endMs - at);
    await sim.clock.advance(step);
    const t = sim.clock.now() - sim.startedAt;
    if (t >= joinMs) await churn(step);
    sample();
    if (t >= steadyFrom) {
      if (!loadAt) (loadAt = snapshotLoad()), (findsAtLoad = finds.length + pendingFinds.length);
      if (t < endMs) startFinds();
    }
  }
  // Let the last searches finish (each is bounded by its hop timeouts).
  await sim.clock.advance(5_000);
  await Promise.all(pendingFinds);
  pendingFinds = [];

  const end = snapshotLoad();
  const reqRates: number[] = [];
  const allRates: number[] = [];
  /** Seeds apart: every newcomer's first contact (help, self-check, key check of their records). */
  const seedRates: number[] = [];
  const nonSeedAll: number[] = [];
  const byteRates: number[] = [];
  let findRequests = 0;
  const methodSums: Record<string, number> = {};
  let busiest: SimResult["busiest"] = null;
  for (const [x, a] of loadAt ?? []) {
    const b = end.get(x);
    if (!b || b.t <= a.t) continue;
    findRequests += b.find - a.find;
    if (!isHonest(x)) continue;
    const min = (b.t - a.t) / 60_000;
    const rates: Record<string, number> = {};
    for (const [m, v] of Object.entries(b.byMethod)) {
      const r = (v - (a.byMethod[m] ?? 0)) / min;
      if (r > 0) (rates[m] = Math.round(r * 10) / 10), (methodSums[m] = (methodSums[m] ?? 0) + r);
    }
    const upkeepRate = (b.upkeep - a.upkeep) / min;
    if (!busiest || upkeepRate > busiest.perMin) busiest = { perMin: Math.round(upkeepRate * 10) / 10, seed: x.seed, ageS: Math.round((sim.clock.now() - x.bornAt) / 1000), byMethod: rates };
    reqRates.push(upkeepRate);
    const all = (b.upkeep - a.upkeep + b.find - a.find) / min;
    allRates.push(all);
    (x.seed ? seedRates : nonSeedAll).push(x.seed ? upkeepRate : all);
    byteRates.push((b.bytes - a.bytes) / min);
  }
  const mean = (xs: number[]) => (xs.length ? xs.reduce((p, q) => p + q, 0) / xs.length : 0);
  const requestsByMethod = Object.fromEntries(Object.entries(methodSums).map(([m, v]) => [m, Math.round((v / Math.max(1, reqRates.length)) * 10) / 10]));

  // Eclipses and bans, at the end.
  let eclipsed = 0;
  let hostileOutMax = 0;
  const eclipsedLinks: SimResult["eclipsedLinks"] = [];
  const bannedHonest = new Set<string>();
  const bannedHostile = new Set<string>();
  const honestBanReasons: Record<string, number> = {};
  for (const x of sim.live()) {
    if (!isHonest(x)) continue;
    const st = x.mesh.status();
    hostileOutMax = Math.max(hostileOutMax, st.mesh.links.filter((l) => l.direction === "out" && sim.byId.get(l.peer)?.hostile).length);
    if (st.mesh.links.length && st.mesh.links.every((l) => sim.byId.get(l.peer)?.hostile)) {
      eclipsed++;
      eclipsedLinks.push({ out: st.mesh.links.filter((l) => l.direction === "out").length, in: st.mesh.links.filter((l) => l.direction === "in").length, victim: x === sim.victim });
    }
    for (const b of st.bans) {
      const y = sim.ever.get(b.target) ?? sim.ever.get(b.target.split(":")[0]!.replace(/^\[|\]$/g, ""));
      if (!y) continue;
      (y.hostile ? bannedHostile : bannedHonest).add(y.id);
      if (!y.hostile) {
        const why = b.reason.replace(/[0-9a-f]{16,}|\d+(\.\d+)*/g, "…").slice(0, 80);
        honestBanReasons[why] = (honestBanReasons[why] ?? 0) + 1;
      }
    }
  }
  const v = sim.victim;
  const victimHostileLinks = v?.alive ? v.mesh.status().mesh.links.filter((l) => sim.byId.get(l.peer)?.hostile).length : null;
  const hops = finds.filter((f) => f.ok && f.hops !== null).map((f) => f.hops!);
  const commonFinds = finds.filter((f) => f.common);
  const h = heap(true);
  const result: SimResult = {
    nodes: o.nodes,
    seeds: o.seeds,
    churn: o.churn,
    sybil: o.sybil,
    sybilPrefixes: o.sybilPrefixes,
    kinds: o.kinds,
    seed: o.seed,
    simulatedSeconds: Math.round(sim.seconds()),
    wallSeconds: Math.round((performance.now() - wall0) / 100) / 10,
    cpuSeconds: Math.round(cpuSince(cpu0) * 10) / 10,
    convergedAtS,
    finalConverged: series.at(-1)?.converged ?? 0,
    findSuccess: commonFinds.length ? commonFinds.filter((f) => f.ok).length / commonFinds.length : null,
    findSuccessAll: finds.length ? finds.filter((f) => f.ok).length / finds.length : null,
    finds: finds.length,
    medianHops: quantile(hops, 0.5),
    p99Hops: quantile(hops, 0.99),
    requestsPerNodePerMin: { mean: Math.round(mean(reqRates) * 10) / 10, max: Math.round(Math.max(0, ...reqRates) * 10) / 10 },
    requestsWithFindsPerNodePerMin: { mean: Math.round(mean(allRates) * 10) / 10, max: Math.round(Math.max(0, ...allRates) * 10) / 10, maxNonSeed: Math.round(Math.max(0, ...nonSeedAll) * 10) / 10 },
    seedRequestsPerMin: { mean: Math.round(mean(seedRates) * 10) / 10, max: Math.round(Math.max(0, ...seedRates) * 10) / 10 },
    joinsPerMin: Math.round((joinsInWindow / Math.max(1e-9, (endMs - steadyFrom) / 60_000)) * 10) / 10,
    requestsPerFind: finds.length > findsAtLoad ? Math.round(findRequests / (finds.length - findsAtLoad)) : null,
    bytesPerNodePerMin: { mean: Math.round(mean(byteRates)), max: Math.round(Math.max(0, ...byteRates)) },
    requestsByMethod,
    busiest,
    eclipsedHonest: eclipsed,
    eclipsedLinks,
    hostileOutMax,
    bannedHonest: bannedHonest.size,
    bannedHostile: bannedHostile.size,
    honestBanReasons,
    victimHostileLinks,
    heapMiB: h.heap,
    rssMiB: h.rss,
    timersFired: sim.clock.fired,
    series,
    hops,
    load: reqRates,
  };
  await sim.close();
  return result;
}
export type { Attack };
