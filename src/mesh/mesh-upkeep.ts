// The running mesh's upkeep (seed 001 §候选池, §组网池; DESIGN §5): filling outgoing links, switching
// 1–2 of them every switch interval, refreshing the candidate pool, asking for help, writing the
// peer cache. Pure parts of the step (mesh-machine.ts): they change the state and return actions.
import { dialAddress, type Rand } from "./candidate-pool.ts";
import { pickDials } from "./dialer.ts";
import { askHelp, bump, checkSelf, logRebuild, selfCheckWhenReady, type MeshAction, type MeshState } from "./mesh-machine.ts";
import { MESH_CLOSE } from "./mesh-service-constants.ts";
import { recordNodeId } from "./record.ts";

/** An unchanged pool is written again after this many cache write intervals. */
const CACHE_REWRITE_INTERVALS = 10;

/** Re-signs our record (a higher seq, a fresh issue time) when it is record_resign_s old, so that
 *  it never reaches record_max_age_s while we serve. Peers get it with the next shares. */
function resign(s: MeshState, now: number): MeshAction[] {
  const own = s.own.current();
  if (!own || now - Number(own.issuedAtMs) < s.settings.recordResignMs) return [];
  bump(s.events, "recordsResigned");
  return logRebuild(s.own.rebuild(now));
}

/** Candidates whose record passed record_max_age_s: their node stopped re-signing (gone, moved,
 *  re-keyed), or nobody brought us its fresh copy. */
function dropExpiredRecords(s: MeshState, now: number): string[] {
  return s.candidates.issuedBefore(now - s.settings.recordMaxAgeMs).filter((id) => s.candidates.remove(id));
}

/** The maintenance tick: cheap when nothing is missing (no messages, no scan of the pools). */
export function tick(s: MeshState, now: number, rand: Rand): MeshAction[] {
  const out: MeshAction[] = [...resign(s, now)];
  if (now - s.lastSweepAt >= s.settings.sweepMs) {
    s.lastSweepAt = now;
    sweep(s, now);
    out.push(...trimShared(s));
  }
  const { settings } = s;
  if (s.role === "service") {
    out.push(...switchLinks(s, now, rand), ...fill(s, now, rand));
    const share = refreshPool(s, now, rand);
    if (share) out.push(share);
    // Too few candidates to fill the mesh (we started before our peers knew anyone, or everyone
    // we knew is gone): ask again, backing off while it brings nothing.
    const starved = () => settings.helpWhenStarved && s.meshPool.deficit() > 0 && s.dials.dialing.size === 0 && dialableCount(s, now) === 0;
    if (!s.helping && now - s.lastHelpAt > s.help.waitMs && (s.candidates.size < s.meshPool.maxOut || starved())) out.push(askHelp(s, "known", now));
  } else if (s.selfCheckWaiting) out.push(...selfCheckWhenReady(s, now));
  else if (s.role === "client") {
    if (!settings.clientOnly && now - s.lastSelfCheckAt > s.recheck.waitMs && (settings.configPeers > 0 || s.candidates.size > 0)) {
      out.push(checkSelf(s, "known", now));
    }
    // A client keeps its pool fresh by asking known nodes now and then (seed 001 §节点组网: 挂机).
    if (!s.helping && now - s.lastHelpAt > settings.switchIntervalMs) out.push(askHelp(s, "known", now));
  }
  // The cache is written when the pool changed, and now and then anyway (last-seen times move on).
  const sinceWrite = now - (s.lastCacheWriteAt ?? s.startedAt);
  if (sinceWrite > settings.cacheWriteIntervalMs && (s.candidates.version !== s.cachedVersion || sinceWrite > CACHE_REWRITE_INTERVALS * settings.cacheWriteIntervalMs)) {
    s.lastCacheWriteAt = now;
    s.cachedVersion = s.candidates.version;
    out.push({ type: "writeCache" });
  }
  out.push({ type: "schedule", timer: "tick", ms: settings.tickMs });
  return out;
}

/** Expired candidates and records, stale cooldowns and bans; RTT samples of the live links. */
function sweep(s: MeshState, now: number): void {
  for (const id of s.candidates.expire(now)) s.dials.forget(id);
  for (const id of dropExpiredRecords(s, now)) s.dials.forget(id);
  s.dials.prune(now);
  s.bans.prune(now);
  for (const [id, link] of s.live) {
    s.candidates.seen(id, now);
    if (link.rttMs !== null) {
      s.candidates.sampleRtt(id, { rttMs: link.rttMs, now });
      s.meshPool.setRtt(id, link.rttMs);
    }
  }
}

/** Links into networks of several keys beyond their limit are closed: the candidate pool may have
 *  learned the other keys of a network after its links opened (a newcomer's first picks come from a
 *  pool that knows one key per network). Their slots go to other networks. */
function trimShared(s: MeshState): MeshAction[] {
  const out: MeshAction[] = [];
  for (const id of s.meshPool.overShared()) {
    const link = s.live.get(id);
    if (!link) continue;
    bump(s.events, "linksTrimmedShared");
    out.push({ type: "close", link, reason: MESH_CLOSE.crowded });
  }
  return out;
}

/** Candidates we could dial now. */
function dialableCount(s: MeshState, now: number): number {
  let n = 0;
  const skip = notDialable(s, now);
  for (const id of s.candidates.ids()) if (!skip(id) && !s.dials.blocked(id, now)) n++;
  return n;
}

/** Candidates fill() passes over: linked, banned, or in a network (or network group) that already
 *  has its share of our outgoing links (the link would be closed as crowded). */
function notDialable(s: MeshState, now: number): (id: string) => boolean {
  const crowded = (id: string) => {
    const net = s.candidates.netOf(id);
    return net !== undefined && !s.meshPool.hasRoomFor("out", net.net, net.group);
  };
  return (id) => s.live.has(id) || s.bans.isBanned(id, now) || crowded(id);
}

/** Every switch interval 1–2 outgoing links are closed; the refill dials fresh candidates, and the
 *  dropped peers cool down for a few intervals so the switch really brings someone new. */
function switchLinks(s: MeshState, now: number, rand: Rand): MeshAction[] {
  if (now < s.meshPool.nextSwitchAt) return [];
  const plan = s.meshPool.planSwitch(now, rand, { candidates: dialableCount(s, now) });
  if (!plan || !plan.drop.length) return [];
  bump(s.events, "switches");
  const out: MeshAction[] = [];
  for (const id of plan.drop) {
    s.dials.coolDown(id, now, s.settings.switchAwayIntervals * s.settings.switchIntervalMs);
    const link = s.live.get(id);
    if (link) out.push({ type: "close", link, reason: MESH_CLOSE.switched });
  }
  return out;
}

/** Dials picks from the candidate pool for the missing outgoing links. */
export function fill(s: MeshState, now: number, rand: Rand): MeshAction[] {
  if (s.role !== "service" || !s.own.current()) return [];
  const want = s.meshPool.deficit() - s.dials.dialing.size;
  const picks = pickDials(s.candidates, s.dials, want, now, rand, notDialable(s, now));
  return picks.map((record) => {
    s.dials.begin(recordNodeId(record));
    return { type: "dial", record } as const;
  });
}

/** Pool refresh: while the candidate pool is not full, ask one random mesh link for a share, backing
 *  off while shares bring nothing. Without it a node whose links all came early (the first node of a
 *  network: its peers knew nobody yet when they linked) learns nothing until its links switch.
 *  While outgoing links are missing and nobody is left to dial, the wait stays short: that node
 *  cannot do its part of the mesh until it learns more. */
function refreshPool(s: MeshState, now: number, rand: Rand): MeshAction | null {
  if (s.refreshing || s.settings.shareCount === 0 || !s.live.size) return null;
  const since = now - s.lastRefreshAt;
  if (since < Math.min(s.refresh.waitMs, s.settings.starvedRefreshMaxMs)) return null;
  const starved = () => s.meshPool.deficit() > 0 && s.dials.dialing.size === 0 && dialableCount(s, now) === 0;
  // A full pool is refreshed only while starved: its candidates all refused us (or cool down), and
  // newcomers take the places of those that refused as full.
  const full = s.candidates.size >= s.candidates.capacity;
  if ((full || since < s.refresh.waitMs) && !starved()) return null;
  const links = [...s.live.values()];
  const link = links[Math.floor(rand() * links.length)]!;
  s.refreshing = true;
  s.lastRefreshAt = now;
  bump(s.events, "poolRefreshes");
  return { type: "share", link, refresh: true };
}
