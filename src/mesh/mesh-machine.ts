// The mesh's role state machine and its step (DESIGN §3, §5; seed 001 §组网规则). No I/O: the step takes
// the state, one event, `now` and `rand`, changes the state and returns the actions for the driver
// (mesh-service.ts) to run against real or in-memory links and timers.
//
// Roles: new → client (--client-only, or no peer to check with) | service (--public) | checking
// (waiting for the start help to bring checkers, then the self-check running) → service | client; a client checks again after a wait that starts short and
// doubles up to the switch interval (checking again); any role → stopped.
// Service: fills outgoing links, switches 1–2 of them every switch interval, refreshes the pool,
// asks for help while it knows fewer candidates than mesh_out. Client: asks for help every switch
// interval. Both write the peer cache now and then.
import type { NodeRecord } from "../wire/index.ts";
import { DEFAULTS } from "../config/index.ts";
import { admitLink, punish } from "./admission.ts";
import { createBanList, type BanList } from "./ban-list.ts";
import { createCandidatePool, DEFAULT_CANDIDATE_TTL_MS, type CandidatePool, type Rand } from "./candidate-pool.ts";
import type { CoreLink } from "./core-link.ts";
import { createBackoff, createDialBook, type Backoff, type DialBook } from "./dialer.ts";
import { MESH_CLOSE } from "./mesh-service-constants.ts";
import { createMeshPool, type MeshPool } from "./mesh-pool.ts";
import { fill, tick } from "./mesh-upkeep.ts";
import type { OwnRecord, RebuildOutcome } from "./own-record.ts";
import type { Sharer } from "./record-merge.ts";
import { recordAddress } from "./record.ts";
import { SELF_CHECKERS } from "./self-check.ts";

/** Maintenance tick: replaces lost links, runs the switch plan. Cheap when nothing is missing (no
 *  messages, no scan of the pools), so 1 s keeps "lost links are replaced promptly" without cost. */
const MESH_TICK_MS = 1_000;
/** Housekeeping of the tick (expired candidates and records, stale cooldowns and bans, RTT samples of
 *  live links) runs at most this often: none of it is urgent to the second. */
const MESH_SWEEP_MS = 10_000;
/** Delay before refilling after a link closed: lets a burst of closes (a peer dying with several
 *  links, a switch) settle into one fill. */
const REFILL_DELAY_MS = 100;
/** A peer we switched away from is not picked again for this many switch intervals, so switching
 *  really brings fresh candidates. */
const SWITCH_AWAY_INTERVALS = 2;
/** How often the candidate pool is written to <home>/peers.json (also written at stop). */
const PEER_CACHE_WRITE_INTERVAL_MS = 60_000;
/** First wait before a serving node with fewer candidates than mesh_out asks for help again, and
 *  between pool refreshes that bring news; doubled after each round that brings nothing, up to the
 *  switch interval. A newcomer whose helpers did not serve yet must not wait minutes. */
const HELP_RETRY_MS = 3_000;
/** Longest wait between pool refreshes of a node that misses outgoing links and has no candidate
 *  left to dial (e.g. the first node of a network, whose every candidate already linked to it). */
const STARVED_REFRESH_MAX_MS = 6_000;

export type MeshRole = "new" | "checking" | "service" | "client" | "stopped";

export type CloseReason = (typeof MESH_CLOSE)[keyof typeof MESH_CLOSE];

export interface MeshSettings {
  /** Never serve (--client-only). */
  clientOnly: boolean;
  /** Serve without the self-check (--public). */
  public: boolean;
  /** Valid configured peers (--peer): with none and an empty pool there is nobody to check with. */
  configPeers: number;
  /** config `mesh_switch_s` × 1000. */
  switchIntervalMs: number;
  /** config `mesh_share`. */
  shareCount: number;
  /** Maintenance tick. */
  tickMs: number;
  /** Housekeeping period of the tick (expiry, pruning, RTT samples). */
  sweepMs: number;
  /** Delay before refilling after a link closed or a dial ended. */
  refillDelayMs: number;
  /** First wait between help rounds and pool refreshes. */
  helpRetryMs: number;
  /** Longest wait between refreshes of a node that misses outgoing links and has nobody to dial. */
  starvedRefreshMaxMs: number;
  /** How often the peer cache is written. */
  cacheWriteIntervalMs: number;
  /** A peer switched away from is not dialled again for this many switch intervals. */
  switchAwayIntervals: number;
  /** Also ask for help (backing off) while outgoing links are missing and no candidate is left to
   *  dial (all full, cooling down or gone), not only while the pool is smaller than mesh_out. */
  helpWhenStarved: boolean;
  /** config `record_max_age_s` × 1000: candidates whose record is older are dropped. */
  recordMaxAgeMs: number;
  /** config `record_resign_s` × 1000: our record is re-signed when it is this old. */
  recordResignMs: number;
}

export interface MeshState {
  role: MeshRole;
  readonly settings: MeshSettings;
  readonly myId: string;
  readonly own: OwnRecord;
  readonly candidates: CandidatePool;
  readonly meshPool: MeshPool;
  readonly dials: DialBook;
  readonly bans: BanList;
  /** Live mesh links by peer node id (one per peer). */
  readonly live: Map<string, CoreLink>;
  /** Event counters for status. */
  readonly events: Record<string, number>;
  readonly help: Backoff;
  readonly refresh: Backoff;
  /** Wait before a client checks itself again: short after the first failure (its checkers may only
   *  have been busy, e.g. a burst of joins), doubling up to the switch interval. */
  readonly recheck: Backoff;
  startedAt: number;
  lastHelpAt: number;
  lastSelfCheckAt: number;
  lastRefreshAt: number;
  lastCacheWriteAt: number | null;
  /** The candidate pool's version when the cache was last written. */
  cachedVersion: number;
  lastSweepAt: number;
  helping: boolean;
  /** The start self-check waits for the start help to bring checkers (selfCheckReady). */
  selfCheckWaiting: boolean;
  refreshing: boolean;
  refillPending: boolean;
}

export type MeshEvent =
  /** `helpTargets`: how many config and cache addresses there are to ask and check with. */
  | { type: "start"; helpTargets: number }
  | { type: "selfCheckDone"; reachable: boolean; observedIp: string | null; detail: Record<string, unknown> }
  | { type: "helpDone"; broughtNews: boolean }
  | { type: "shareDone"; refresh: boolean; broughtNews: boolean }
  | { type: "tick" }
  | { type: "refill" }
  | { type: "linkUp"; link: CoreLink }
  | { type: "linkDown"; link: CoreLink; code: number }
  | { type: "dialDone"; id: string; error: string | null }
  | { type: "lie"; sharer: Sharer; why: string }
  | { type: "natChanged" }
  | { type: "stop" };

export type MeshAction =
  | { type: "dial"; record: NodeRecord }
  | { type: "close"; link: CoreLink; reason: CloseReason }
  /** Peer sharing on `link`: ask for ~mesh_share records and merge them (`refresh`: a pool refresh). */
  | { type: "share"; link: CoreLink; refresh: boolean }
  /** Watch a kept link for its close (→ linkDown). */
  | { type: "watch"; link: CoreLink }
  /** Online help: "start" asks the configured and cached addresses (and merges the cache). */
  | { type: "requestHelp"; from: "start" | "known" }
  | { type: "selfCheck"; from: "start" | "known" }
  | { type: "forgetLink"; id: string }
  | { type: "writeCache" }
  | { type: "schedule"; timer: "tick" | "refill"; ms: number }
  | { type: "cancelTimers" }
  | { type: "log"; level: "debug" | "info" | "warn" | "error"; msg: string; fields?: Record<string, unknown> };

/** Pool sizes and the switch interval from the config; the timing edges from mesh-service-constants.ts. */
export interface MeshStateInit {
  myId: string;
  own: OwnRecord;
  now: number;
  clientOnly: boolean;
  public: boolean;
  configPeers: number;
  shortlist: number;
  meshOut: number;
  meshIn: number;
  /** Diversity: most mesh links per direction / candidates per IPv4 /24 or IPv6 /48. @default defaults.toml */
  meshPerPrefix?: number;
  candidatesPerPrefix?: number;
  switchIntervalMs: number;
  shareCount: number;
  /** config `record_max_age_s` × 1000. @default the embedded default */
  recordMaxAgeMs?: number;
  /** config `record_resign_s` × 1000. @default the embedded default */
  recordResignMs?: number;
  /** Overrides of the timing edges (tests, the simulator). */
  timing?: Partial<Pick<MeshSettings, "tickMs" | "sweepMs" | "refillDelayMs" | "helpRetryMs" | "starvedRefreshMaxMs" | "cacheWriteIntervalMs" | "switchAwayIntervals" | "helpWhenStarved">>;
}

export function createMeshState(init: MeshStateInit): MeshState {
  const settings: MeshSettings = {
    clientOnly: init.clientOnly,
    public: init.public,
    configPeers: init.configPeers,
    switchIntervalMs: init.switchIntervalMs,
    shareCount: init.shareCount,
    tickMs: MESH_TICK_MS,
    sweepMs: MESH_SWEEP_MS,
    refillDelayMs: REFILL_DELAY_MS,
    helpRetryMs: HELP_RETRY_MS,
    starvedRefreshMaxMs: STARVED_REFRESH_MAX_MS,
    cacheWriteIntervalMs: PEER_CACHE_WRITE_INTERVAL_MS,
    switchAwayIntervals: SWITCH_AWAY_INTERVALS,
    helpWhenStarved: true,
    recordMaxAgeMs: init.recordMaxAgeMs ?? DEFAULTS.record_max_age_s * 1000,
    recordResignMs: init.recordResignMs ?? DEFAULTS.record_resign_s * 1000,
    ...init.timing,
  };
  const candidates = createCandidatePool({ selfId: init.myId, capacity: init.shortlist, ttlMs: DEFAULT_CANDIDATE_TTL_MS, perPrefix: init.candidatesPerPrefix });
  return {
    role: "new",
    settings,
    myId: init.myId,
    own: init.own,
    candidates,
    meshPool: createMeshPool({ maxOut: init.meshOut, maxIn: init.meshIn, switchIntervalMs: init.switchIntervalMs, perPrefix: init.meshPerPrefix, sharedNet: (net) => candidates.keysIn(net) >= 2, now: init.now }),
    dials: createDialBook(),
    bans: createBanList(),
    live: new Map(),
    events: {},
    help: createBackoff(settings.helpRetryMs, init.switchIntervalMs),
    refresh: createBackoff(settings.helpRetryMs, init.switchIntervalMs),
    recheck: createBackoff(settings.helpRetryMs, init.switchIntervalMs),
    startedAt: init.now,
    lastHelpAt: 0,
    lastSelfCheckAt: 0,
    lastRefreshAt: 0,
    lastCacheWriteAt: null,
    cachedVersion: -1,
    lastSweepAt: 0,
    helping: false,
    selfCheckWaiting: false,
    refreshing: false,
    refillPending: false,
  };
}

export function bump(events: Record<string, number>, key: string, n = 1): void {
  events[key] = (events[key] ?? 0) + n;
}

/** The whole state machine: one event in, actions out. */
export function step(s: MeshState, event: MeshEvent, now: number, rand: Rand): MeshAction[] {
  if (s.role === "stopped") return [];
  switch (event.type) {
    case "start":
      return start(s, event.helpTargets, now);
    case "selfCheckDone":
      return selfCheckDone(s, event, now);
    case "helpDone":
      s.helping = false;
      s.help.settle(event.broughtNews);
      return s.role === "service" ? fill(s, now, rand) : selfCheckWhenReady(s, now);
    case "shareDone":
      if (event.refresh) {
        s.refreshing = false;
        s.refresh.settle(event.broughtNews);
      }
      return [];
    case "tick":
      return tick(s, now, rand);
    case "refill":
      s.refillPending = false;
      return fill(s, now, rand);
    case "linkUp":
      return admitLink(s, event.link, now);
    case "linkDown":
      return linkDown(s, event.link, event.code, now);
    case "dialDone":
      return dialDone(s, event.id, event.error, now);
    case "lie":
      return punish(s, event.sharer, event.why, now);
    case "natChanged":
      return logRebuild(s.own.rebuild(now));
    case "stop": {
      const wasRunning = s.role !== "new";
      s.role = "stopped";
      return [{ type: "cancelTimers" }, ...(wasRunning ? [{ type: "writeCache" } as const] : [])];
    }
  }
}

function start(s: MeshState, helpTargets: number, now: number): MeshAction[] {
  if (s.role !== "new") return [];
  s.startedAt = now;
  const out: MeshAction[] = [askHelp(s, "start", now)];
  if (s.settings.clientOnly) s.role = "client";
  else if (s.settings.public) out.push(...becomeService(s, null, now));
  else if (helpTargets === 0) {
    s.role = "client";
    out.push({ type: "log", level: "warn", msg: "no peers to run the self-check with: this node will not serve (give --peer ADDR, or --public for the first node of a network)" });
  } else {
    // The self-check asks nodes the start help brings (selfCheckWhenReady), not the configured peers
    // every newcomer knows: they would answer a self-check per join.
    s.role = "checking";
    s.selfCheckWaiting = true;
  }
  out.push({ type: "schedule", timer: "tick", ms: s.settings.tickMs });
  return out;
}

/** Runs the waiting start self-check once the pool holds SELF_CHECKERS candidates besides the
 *  configured peers (counted as if all of them were in it), or the start help ended (then with
 *  whoever it brought, the configured peers filling up). */
export function selfCheckWhenReady(s: MeshState, now: number): MeshAction[] {
  if (!s.selfCheckWaiting) return [];
  if (s.helping && s.candidates.size < SELF_CHECKERS + s.settings.configPeers) return [];
  s.selfCheckWaiting = false;
  return [checkSelf(s, "start", now)];
}

/** Serves when one checker reached us over TLS and QUIC; otherwise stays a client (the tick tries
 *  again every switch interval: the checkers may have been down, a port forward added). */
function selfCheckDone(s: MeshState, e: Extract<MeshEvent, { type: "selfCheckDone" }>, now: number): MeshAction[] {
  s.lastSelfCheckAt = now;
  s.selfCheckWaiting = false;
  if (s.role === "service") return [];
  s.recheck.settle(e.reachable);
  if (e.reachable) {
    return [{ type: "log", level: "info", msg: "self-check passed: serving", fields: { observedIp: e.observedIp, ...e.detail } }, ...becomeService(s, e.observedIp, now)];
  }
  s.role = "client";
  return [{ type: "log", level: "warn", msg: "self-check failed: not reachable from the network, this node does not serve for now", fields: e.detail }];
}

export function becomeService(s: MeshState, ip: string | null, now: number): MeshAction[] {
  s.role = "service";
  return [...logRebuild(s.own.serve(ip, now)), ...scheduleRefill(s)];
}

export function askHelp(s: MeshState, from: "start" | "known", now: number): MeshAction {
  s.helping = true;
  s.lastHelpAt = now;
  return { type: "requestHelp", from };
}

export function checkSelf(s: MeshState, from: "start" | "known", now: number): MeshAction {
  s.role = "checking";
  s.lastSelfCheckAt = now;
  return { type: "selfCheck", from };
}

export function scheduleRefill(s: MeshState): MeshAction[] {
  if (s.refillPending) return [];
  s.refillPending = true;
  return [{ type: "schedule", timer: "refill", ms: s.settings.refillDelayMs }];
}

export function logRebuild(outcome: RebuildOutcome | null): MeshAction[] {
  if (!outcome || "skipped" in outcome) return [];
  if ("error" in outcome) return [{ type: "log", level: "error", msg: "cannot build own record", fields: { error: outcome.error } }];
  return [{ type: "log", level: "info", msg: "own record", fields: { address: recordAddress(outcome.built), kinds: [...outcome.built.kinds] } }];
}

/** Codes by which a peer refused our link: try someone else for a while. */
const REFUSALS: readonly number[] = [MESH_CLOSE.full.code, MESH_CLOSE.notServing.code, MESH_CLOSE.banned.code, MESH_CLOSE.crowded.code];

function linkDown(s: MeshState, link: CoreLink, code: number, now: number): MeshAction[] {
  const id = link.peerNodeId;
  if (!id) return [];
  if (s.live.get(id) === link) {
    s.live.delete(id);
    s.meshPool.remove(id);
  }
  if (code === MESH_CLOSE.full.code && link.direction === "out") {
    // A full node stays full until its peers switch links away: ask again in half an interval, and let
    // a newcomer to our candidate pool take its place.
    bump(s.events, "dialsRefusedFull");
    s.candidates.noteRefusedFull(id, now);
    s.dials.coolDown(id, now, s.settings.switchIntervalMs / 2);
  } else if (REFUSALS.includes(code)) s.dials.coolDown(id, now);
  return [{ type: "forgetLink", id }, ...scheduleRefill(s)];
}

function dialDone(s: MeshState, id: string, error: string | null, now: number): MeshAction[] {
  s.dials.end(id);
  const out: MeshAction[] = [];
  if (error === null) bump(s.events, "dialsOk");
  else {
    bump(s.events, "dialsFailed");
    out.push({ type: "log", level: "debug", msg: "mesh dial failed", fields: { peer: id.slice(0, 16), error } });
    if (s.dials.failed(id, now)) {
      // Down or unwilling: drop it so we stop sharing it; sharing brings it back when it is up.
      s.candidates.remove(id);
      bump(s.events, "candidatesDropped");
    }
  }
  return [...out, ...scheduleRefill(s)];
}
