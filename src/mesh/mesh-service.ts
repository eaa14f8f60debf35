// The running mesh of a Findings node (DESIGN §3, §5, §8; seed 001 §组网规则, §公钥广播与验证): the
// driver of the role state machine (mesh-machine.ts). It feeds the machine events (start, ticks,
// links up and down, dial and round results, lies) and runs the actions it returns against the
// links, the UDP endpoint, the clock and <home>. The mesh's requests are router routes (handlers.ts),
// added at start and removed at stop.
//
// Modules: own-record.ts (our record), dialer.ts (one cooldown and back-off), admission.ts (kept
// links, bans), peer-sharing.ts (mesh.peers both ways), mesh-upkeep.ts (fill, switch, refresh),
// mesh-rounds.ts (online help, self-check), record-merge.ts (checks of shared records).
import { ConfigError, errorLine } from "../errors.ts";
import type { NodeRecord } from "../wire/index.ts";
import { contradicts, sharerOf } from "./admission.ts";
import { loadUserBans } from "./ban-list.ts";
import { systemClock, type TimerHandle } from "../contracts/index.ts";
import type { CoreLink } from "./core-link.ts";
import { addMeshRoutes } from "./handlers.ts";
import { configTargets, fillUp, recordTargets, shuffle, targetKey, type AskTarget } from "./help-targets.ts";
import { bump, createMeshState, step, type MeshAction, type MeshEvent, type MeshState } from "./mesh-machine.ts";
import { helpRound, selfCheckRound, type RoundDeps } from "./mesh-rounds.ts";
import { createMeshSearch } from "./mesh-search.ts";
import type { MeshService, MeshServiceComponents, MeshServiceInit } from "./mesh-service-api.ts";
import type { HelpTarget } from "./online-help.ts";
import { candidateKinds, meshCounters, meshStatus, meshSummary, type DriverCounters } from "./mesh-status.ts";
import { createOwnRecord } from "./own-record.ts";
import { createPeerSharing } from "./peer-sharing.ts";
import { readPeerCache, writePeerCache } from "./peer-cache.ts";
import { checkRecord, recordTcpAddress } from "./record-check.ts";
import { dialAddress } from "./candidate-pool.ts";
import { normalizeIp } from "./candidate-addresses.ts";
import { createRecordMerger, type Sharer } from "./record-merge.ts";
import { recordNodeId } from "./record.ts";
import { createSelfChecker, SELF_CHECKERS } from "./self-check.ts";

export type { MeshRole } from "./mesh-machine.ts";
export type { CandidateStatus, MeshLinkStatus, MeshServiceStatus, MeshSummary } from "./mesh-status.ts";
export type { MeshService, MeshServiceComponents, MeshServiceInit } from "./mesh-service-api.ts";

const DONE = Promise.resolve();

export function createMeshService(components: MeshServiceComponents, init: MeshServiceInit): MeshService {
  const { links, udp, nodeKey, home } = components;
  const log = components.log.child({ room: "mesh" });
  const clock = components.clock ?? systemClock;
  const rand = components.rand ?? Math.random;
  const now = () => clock.now();
  const peers = configTargets(init.peers, (peer, error) => log.warn("bad peer address skipped", { peer, error }));
  const peerKeys = new Set(peers.map((p) => targetKey(p.help)));
  const own = createOwnRecord({
    nodeKey,
    host: init.host,
    advertise: init.advertise,
    spki: components.cert.spki,
    stakes: init.stakes,
    identityId: init.identityId,
    ports: () => ({ udpPort: udp.port, tcpPort: components.tcpPort() }),
    nat: () => components.ownNat?.current() ?? null,
  });
  const s: MeshState = createMeshState({
    myId: nodeKey.nodeId,
    own,
    now: now(),
    clientOnly: init.clientOnly,
    public: init.public,
    configPeers: peers.length,
    shortlist: init.shortlist,
    meshOut: init.meshOut,
    meshIn: init.meshIn,
    meshPerPrefix: init.meshPerPrefix,
    candidatesPerPrefix: init.candidatesPerPrefix,
    switchIntervalMs: init.switchIntervalMs,
    shareCount: init.shareCount,
    recordMaxAgeMs: init.recordMaxAgeMs,
    recordResignMs: init.recordResignMs,
    timing: init.timing,
  });
  const messagesIn: Record<string, number> = {};
  const messagesOut: Record<string, number> = {};
  const countIn = (method: string) => bump(messagesIn, method);
  const countOut = (method: string) => bump(messagesOut, method);
  const timers: Partial<Record<"tick" | "refill", TimerHandle>> = {};
  let lifetime = new AbortController();
  let unsubscribe = () => {};
  let removeRoutes = () => {};
  let startTargets: AskTarget[] = [];
  /** Our IP as each configured peer saw it in the start help. */
  const peerVotes: string[] = [];
  let cached: NodeRecord[] = [];
  let resolveReady!: () => void;
  const ready = new Promise<void>((r) => (resolveReady = r));

  const punish = (sharer: Sharer, why: string) => void dispatch({ type: "lie", sharer, why });
  const merger = createRecordMerger({
    pool: s.candidates,
    bans: s.bans,
    dials: s.dials,
    now,
    maxAgeMs: s.settings.recordMaxAgeMs,
    check: (rec) => checkRecord(links, nodeKey, rec, { signal: lifetime.signal, onRequest: countOut, now }),
    punish,
    improvingOnly: () => s.candidates.size >= s.candidates.capacity && s.meshPool.deficit() === 0,
  });
  const d: DriverCounters = { messagesIn, messagesOut, merge: merger.counters, selfCheck: null, peerCache: { loaded: 0, written: 0, lastWriteAt: null } };
  const search = createMeshSearch({
    links: () => [...s.live.values()],
    local: (kind) => [...(own.current()?.kinds.includes(kind) ? [own.current()!] : []), ...s.candidates.byKind(kind)],
    contradicts: (rec) => contradicts(s.candidates, rec),
    rand,
    answersPerNet: init.candidatesPerPrefix === undefined ? undefined : Math.max(1, Math.floor(init.candidatesPerPrefix / 2)),
    checked: (id) => s.candidates.get(id)?.record,
    maxAgeMs: s.settings.recordMaxAgeMs,
    onLie: (link, why) => punish(sharerOf(link), why),
    count: (dir, method) => (dir === "in" ? countIn(method) : countOut(method)),
    now,
  });
  const sharing = createPeerSharing({ candidates: s.candidates, ownRecord: () => own.current(), nodeKey, shareCount: init.shareCount, rand, countOut });
  const selfChecker = createSelfChecker({ udp });
  const rounds = (): RoundDeps => ({ links, merger, punish, maxAgeMs: s.settings.recordMaxAgeMs, bump: (k, n) => bump(s.events, k, n), log: (level, msg, f) => log[level](msg, f), now, signal: lifetime.signal, countOut });

  // ---- the edge: events in, actions out ----

  /** The catch of work started in the background: logged, never left unhandled. */
  const background = (what: string) => (err: unknown) => log.warn(`mesh ${what} failed`, { error: errorLine(err) });

  function dispatch(event: MeshEvent): Promise<void> {
    return run(step(s, event, now(), rand));
  }

  /** Runs actions; the promise covers the rounds (help, self-check) they start, for `ready`. */
  function run(actions: MeshAction[]): Promise<void> {
    const waits: Promise<void>[] = [];
    for (const a of actions) {
      const p = execute(a);
      if (p) waits.push(p);
    }
    return waits.length ? Promise.all(waits).then(() => {}) : DONE;
  }

  function execute(a: MeshAction): Promise<void> | void {
    switch (a.type) {
      case "dial": {
        const id = recordNodeId(a.record);
        const known = s.candidates.get(id);
        const addr = known ? dialAddress(known) : recordTcpAddress(a.record);
        countOut("mesh.dial");
        if (!addr) return void dispatch({ type: "dialDone", id, error: "the record has no TCP address" });
        return void links
          .dialMesh(addr, a.record.publicKey, { signal: lifetime.signal })
          .then(
            () => dispatch({ type: "dialDone", id, error: null }),
            (err) => dispatch({ type: "dialDone", id, error: errorLine(err) }),
          )
          .catch(background("dial"));
      }
      case "close":
        return a.link.close(a.reason.code, a.reason.reason);
      case "watch":
        return void a.link.onClose((info) => void dispatch({ type: "linkDown", link: a.link, code: info.code }).catch(background("link down")));
      case "share":
        return void share(a.link, a.refresh).catch(background("share"));
      case "requestHelp":
        return help(a.from);
      case "selfCheck": {
        const targets = selfCheckTargets().map((x) => x.udp);
        return selfCheckRound({ punish, signal: lifetime.signal, countOut }, selfChecker, targets, { tcpPort: components.tcpPort(), udpPort: udp.port }).then(
          ({ report, event }) => {
            d.selfCheck = report;
            // Our address (on a wildcard host) is what the configured peers saw, as when they were the
            // checkers: self-checkers from the pool confirm reachability but cannot outvote them.
            const seen = a.from === "start" ? peersSawIp() : null;
            if (seen && (event.observedIp === null || normalizeIp(event.observedIp) !== seen)) {
              log.info("self-checkers saw another IP than the configured peers; the peers' view is kept", { checkers: event.observedIp, peers: seen });
              return dispatch({ ...event, observedIp: seen });
            }
            return dispatch(event);
          },
          (err) => dispatch({ type: "selfCheckDone", reachable: false, observedIp: null, detail: { error: errorLine(err) } }),
        );
      }
      case "forgetLink":
        return search.forget(a.id);
      case "writeCache":
        return writeCache();
      case "schedule":
        timers[a.timer] = clock.setTimeout(() => void dispatch({ type: a.timer }), a.ms);
        return;
      case "cancelTimers":
        for (const t of Object.values(timers)) clock.clearTimeout(t);
        return;
      case "log":
        return log[a.level](a.msg, a.fields);
    }
  }

  async function share(link: CoreLink, refresh: boolean): Promise<void> {
    const before = merger.counters.recordsAdded;
    const records = await sharing.ask(link, { signal: lifetime.signal, onLie: (why) => punish(sharerOf(link), why) });
    if (records) await merger.merge(records, sharerOf(link));
    await dispatch({ type: "shareDone", refresh, broughtNews: merger.counters.recordsAdded > before });
  }

  /** Helpers for a later round: known candidates first, the configured peers only to fill up (every
   *  newcomer asks them at start; a starved node asking them again would load them once per join). */
  function knownTargets(): AskTarget[] {
    const known = candidateTargets(s.candidates.pickForSwitch(init.peersHelp + peers.length, rand));
    return fillUp(known, peers, init.peersHelp, rand);
  }

  /** Self-checkers: SELF_CHECKERS random candidates, the configured peers filling up; at start with an
   *  empty pool, the start targets. */
  function selfCheckTargets(): AskTarget[] {
    const known = candidateTargets(shuffle(s.candidates.list().map((c) => c.record), rand));
    const out = fillUp(known, peers, SELF_CHECKERS, rand);
    return out.length ? out : startTargets.slice(0, SELF_CHECKERS);
  }

  /** The IP most configured peers saw us at in the start help, or null. */
  function peersSawIp(): string | null {
    const votes = new Map<string, number>();
    for (const ip of peerVotes.map(normalizeIp)) votes.set(ip, (votes.get(ip) ?? 0) + 1);
    let best: string | null = null;
    let n = 0;
    for (const [ip, v] of votes) if (v > n) [best, n] = [ip, v];
    return best;
  }

  /** Targets of candidates (their proven addresses) that are not configured peers. */
  function candidateTargets(records: NodeRecord[]): AskTarget[] {
    return recordTargets(records, (r) => s.candidates.get(recordNodeId(r))?.proven ?? [])
      .filter((t) => !peerKeys.has(targetKey(t.help)))
      .map((t) => ({ ...t, help: { ...t.help, known: true } }));
  }

  async function help(from: "start" | "known"): Promise<void> {
    const targets = from === "start" ? startTargets : knownTargets();
    const cacheMerge = from === "start" ? merger.merge(cached, null) : Promise.resolve();
    const observed = from === "start" ? (t: HelpTarget, ip: string) => void (peerKeys.has(targetKey(t)) && peerVotes.push(ip)) : undefined;
    const event = await Promise.all([helpRound(rounds(), targets.map((x) => x.help), observed), cacheMerge]).then(
      ([done]) => done,
      (err) => (log.error("online help failed", { error: errorLine(err) }), { type: "helpDone", broughtNews: false } as const),
    );
    await dispatch(event);
  }

  function writeCache(): void {
    const t = now();
    const entries = s.candidates.list().map((c) => ({ record: c.record, lastSeen: c.lastSeen }));
    // An empty pool (nothing learned this run) must not erase what an earlier run found.
    if (!entries.length) return;
    try {
      d.peerCache.written = writePeerCache(home, entries, { now: t, maxAgeMs: init.peerCacheMaxAgeMs });
      d.peerCache.lastWriteAt = t;
    } catch (err) {
      log.warn("cannot write the peer cache", { error: errorLine(err) });
    }
  }

  // ---- lifecycle ----

  return {
    ready,
    get role() {
      return s.role;
    },
    record: () => own.current(),
    async start() {
      if (s.role !== "new") return;
      try {
        s.bans.setUserEntries(loadUserBans(home));
      } catch (err) {
        if (err instanceof ConfigError) throw err;
        throw new ConfigError("bans.json", errorLine(err));
      }
      lifetime = new AbortController();
      removeRoutes = addMeshRoutes({ links, udp, nodeKey, bans: s.bans, sharing, search, selfChecker, ownRecord: () => own.current(), now, countIn, countOut });
      const offLinks = links.onMeshLink((link) => void dispatch({ type: "linkUp", link }));
      // A new own-class result (e.g. FullC) goes into a fresh record with a higher seq.
      const offNat = components.ownNat?.onChange(() => void dispatch({ type: "natChanged" }));
      unsubscribe = () => {
        offLinks();
        offNat?.();
      };
      const cache = readPeerCache(home, { now: now(), maxAgeMs: init.peerCacheMaxAgeMs });
      if (cache.warning) log.warn(cache.warning);
      d.peerCache.loaded = cache.entries.length;
      cached = cache.entries.map((e) => e.record);
      if (cached.length) log.info("peer cache read", { peers: cached.length, dropped: cache.dropped });
      startTargets = [...shuffle([...peers], rand), ...shuffle(recordTargets(cached), rand)].slice(0, init.peersHelp);
      void dispatch({ type: "start", helpTargets: startTargets.length })
        .catch((err) => log.error("mesh bootstrap failed", { error: errorLine(err) }))
        .finally(resolveReady);
    },
    async stop() {
      lifetime.abort(new Error("the mesh service is stopping"));
      unsubscribe();
      removeRoutes();
      await dispatch({ type: "stop" });
      resolveReady();
    },
    status: () => meshStatus(s, d, now()),
    summary: () => meshSummary(s),
    candidateKinds: () => candidateKinds(s),
    counters: () => meshCounters(s, d),
    find: (kind) => search.find(kind),
    candidates: () => s.candidates.list().map((c) => ({ ...c.record, addresses: [...c.proven] })),
    shareable(max) {
      const mine = s.role === "service" ? own.current() : undefined;
      const picked = shuffle(s.candidates.list().map((c) => c.record), rand).slice(0, Math.max(0, max));
      return mine ? [mine, ...picked] : picked;
    },
    async learn(records, sharer) {
      const before = merger.counters.recordsAdded;
      await merger.merge(records.slice(0, init.shortlist), sharer);
      return merger.counters.recordsAdded - before;
    },
    isBanned: (idOrIp) => s.bans.isBanned(idOrIp, now()),
    meshLinks: () => [...s.live.values()],
    punishLiar: (link, why) => punish(sharerOf(link), why),
  };
}
