// The mesh's /status section and /metrics numbers, read from the state machine's state.
import { formatAddress } from "../contracts/index.ts";
import type { BanEntry } from "./ban-list.ts";
import type { CoreLink } from "./core-link.ts";
import type { MeshRole, MeshState } from "./mesh-machine.ts";
import type { MergeCounters } from "./record-merge.ts";
import { toJson, type RecordJson } from "./record-json.ts";
import { formatNodeAddress, recordAddress } from "./record.ts";
import type { SelfCheckReport } from "./self-check.ts";

export interface CandidateStatus {
  id: string;
  address: string;
  /** The record's addresses our key check proved there ("ip:udp/tcp"): the only ones we dial. */
  proven: string[];
  rttMs: number | null;
  lastSeen: number;
  kinds: string[];
}

export interface MeshLinkStatus {
  peer: string;
  remote: string;
  direction: "in" | "out";
  ageMs: number;
  rttMs: number | null;
}

export interface MeshServiceStatus {
  role: MeshRole;
  serving: boolean;
  advertisedIp: string | null;
  /** Every advertised IP (a dual-stack node: one per family). */
  advertisedIps: string[];
  record: RecordJson | null;
  selfCheck: (Omit<SelfCheckReport, "elapsedMs"> & { elapsedMs: number }) | null;
  candidates: CandidateStatus[];
  mesh: { out: number; in: number; maxOut: number; maxIn: number; links: MeshLinkStatus[] };
  bans: BanEntry[];
  counters: {
    messagesIn: Record<string, number>;
    messagesOut: Record<string, number>;
    events: Record<string, number>;
  };
  peerCache: { loaded: number; written: number; lastWriteAt: number | null };
}

/** What the driver counts beside the state. */
export interface DriverCounters {
  messagesIn: Record<string, number>;
  messagesOut: Record<string, number>;
  merge: MergeCounters;
  selfCheck: SelfCheckReport | null;
  peerCache: { loaded: number; written: number; lastWriteAt: number | null };
}

export function meshStatus(s: MeshState, d: DriverCounters, now: number): MeshServiceStatus {
  const record = s.own.current();
  return {
    role: s.role,
    serving: s.own.serving,
    advertisedIp: s.own.advertisedIp,
    advertisedIps: [...s.own.advertisedIps],
    record: record ? toJson(record) : null,
    selfCheck: d.selfCheck ? { ...d.selfCheck, elapsedMs: Math.round(d.selfCheck.elapsedMs) } : null,
    candidates: s.candidates
      .list()
      .sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity))
      .map((c) => ({ id: c.id, address: recordAddress(c.record), proven: c.proven.map(formatNodeAddress), rttMs: c.rttMs === null ? null : round(c.rttMs), lastSeen: c.lastSeen, kinds: [...c.record.kinds] })),
    mesh: {
      out: s.meshPool.list("out").length,
      in: s.meshPool.list("in").length,
      maxOut: s.meshPool.maxOut,
      maxIn: s.meshPool.maxIn,
      links: [...s.live].map(([id, l]: [string, CoreLink]) => ({
        peer: id,
        remote: formatAddress(l.remote.ip, l.remote.port),
        direction: l.direction,
        ageMs: now - l.openedAt,
        rttMs: l.rttMs === null ? null : round(l.rttMs),
      })),
    },
    bans: s.bans.list(now),
    counters: { messagesIn: { ...d.messagesIn }, messagesOut: { ...d.messagesOut }, events: { ...s.events, ...d.merge } },
    peerCache: { ...d.peerCache },
  };
}

/** What the simulator samples of every node often: counts and link ends only, without meshStatus's
 *  per-candidate strings and copies (the same figures as meshStatus at the same moment). */
export interface MeshSummary {
  role: MeshRole;
  serving: boolean;
  out: number;
  maxOut: number;
  /** Candidates in the pool. */
  candidates: number;
  links: { peer: string; direction: "in" | "out" }[];
}

export function meshSummary(s: MeshState): MeshSummary {
  const links: MeshSummary["links"] = [];
  for (const [peer, l] of s.live) links.push({ peer, direction: l.direction });
  return { role: s.role, serving: s.own.serving, out: s.meshPool.list("out").length, maxOut: s.meshPool.maxOut, candidates: s.candidates.size, links };
}

/** Each candidate's node id and the kinds its record names (read-only views of the pool, not copies). */
export function candidateKinds(s: MeshState): { id: string; kinds: readonly string[] }[] {
  return s.candidates.list().map((c) => ({ id: c.id, kinds: c.record.kinds }));
}

export function meshCounters(s: MeshState, d: DriverCounters): Record<string, number> {
  const sum = (m: Record<string, number>) => Object.values(m).reduce((a, b) => a + b, 0);
  return {
    mesh_candidates: s.candidates.size,
    mesh_links_out: s.meshPool.list("out").length,
    mesh_links_in: s.meshPool.list("in").length,
    mesh_bans: s.bans.size,
    mesh_messages_in: sum(d.messagesIn),
    mesh_messages_out: sum(d.messagesOut),
    mesh_switches: s.events.switches ?? 0,
    mesh_key_checks_failed: d.merge.checksKeyFailed,
  };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
