// The running mesh's upkeep (seed 001 §候选池, §组网池; DESIGN §5): filling outgoing links, switching
// 1–2 of them every switch interval, refreshing the candidate pool, asking for help, writing the
// peer cache. Pure parts of the step (mesh-machine.ts): they change the state and return actions.
import { dialAddress, type Rand } from "./candidate-pool.ts";
import { pickDials } from "./dialer.ts";
import { askHelp, bump, checkSelf, logRebuild, type MeshAction, type MeshState } from "./mesh-machine.ts";
import { MESH_CLOSE } from "./mesh-service-constants.ts";
import { recordNodeId } from "./record.ts";
import { netPrefixOf } from "../rpc/index.ts";

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
  const gone: string[] = [];
  for (const c of s.candidates.list()) {
    if (now - Number(c.record.issuedAtMs) > s.settings.recordMaxAgeMs && s.candidates.remove(c.id)) gone.push(c.id);
  }
  return gone;
}

/** The maintenance tick: cheap when nothing is missing (no messages). */
export function tick(s: MeshState, now: number, rand: Rand): MeshAction[] {
  const out: MeshAction[] = [...resign(s, now)];
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
  const { settings } = s;
  if (s.role === "service") {
    out.push(...switchLinks(s, now, rand), ...fill(s, now, rand));
    const share = refreshPool(s, now, rand);
    if (share) out.push(share);
    // Too few candidates to fill the mesh (we started before our peers knew anyone, or everyone
    // we knew is gone): ask again, backing off while it brings nothing.
    const starved = settings.helpWhenStarved && s.meshPool.deficit() > 0 && s.dials.dialing.size === 0 && dialableCount(s, now) === 0;
    if (!s.helping && (s.candidates.size < s.meshPool.maxOut || starved) && now - s.lastHelpAt > s.help.waitMs) out.push(askHelp(s, "known", now));
  } else if (s.role === "client") {
    if (!settings.clientOnly && now - s.lastSelfCheckAt > settings.switchIntervalMs && (settings.configPeers > 0 || s.candidates.size > 0)) {
      out.push(checkSelf(s, "known", now));
    }
    // A client keeps its pool fresh by asking known nodes now and then (seed 001 §节点组网: 挂机).
    if (!s.helping && now - s.lastHelpAt > settings.switchIntervalMs) out.push(askHelp(s, "known", now));
  }
  if (now - (s.lastCacheWriteAt ?? s.startedAt) > settings.cacheWriteIntervalMs) {
    s.lastCacheWriteAt = now;
    out.push({ type: "writeCache" });
  }
  out.push({ type: "schedule", timer: "tick", ms: settings.tickMs });
  return out;
}

/** Candidates we could dial now. */
function dialableCount(s: MeshState, now: number): number {
  let n = 0;
  for (const c of s.candidates.list()) if (!s.live.has(c.id) && !s.dials.blocked(c.id, now) && !s.bans.isBanned(c.id, now)) n++;
  return n;
}

/** Every switch interval 1–2 outgoing links are closed; the refill dials fresh candidates, and the
 *  dropped peers cool down for a few intervals so the switch really brings someone new. */
function switchLinks(s: MeshState, now: number, rand: Rand): MeshAction[] {
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
  // A candidate whose network already has its share of our outgoing links is not dialled (it would be closed).
  const crowded = (id: string) => {
    const known = s.candidates.get(id);
    const addr = known ? dialAddress(known) : null;
    return addr !== null && !s.meshPool.hasRoomFor("out", netPrefixOf(addr.ip));
  };
  const picks = pickDials(s.candidates, s.dials, want, now, rand, (id) => s.live.has(id) || s.bans.isBanned(id, now) || crowded(id));
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
  if (s.refreshing || s.settings.shareCount === 0 || s.candidates.size >= s.candidates.capacity || !s.live.size) return null;
  const starved = s.meshPool.deficit() > 0 && s.dials.dialing.size === 0 && dialableCount(s, now) === 0;
  const wait = starved ? Math.min(s.refresh.waitMs, s.settings.starvedRefreshMaxMs) : s.refresh.waitMs;
  if (now - s.lastRefreshAt < wait) return null;
  const links = [...s.live.values()];
  const link = links[Math.floor(rand() * links.length)]!;
  s.refreshing = true;
  s.lastRefreshAt = now;
  bump(s.events, "poolRefreshes");
  return { type: "share", link, refresh: true };
}
