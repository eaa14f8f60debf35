// Search by app kind through the mesh: answer from own knowledge, forward with a hop budget, merge and group (DESIGN §8; seed 001 §服务器群).
//
// 1. Rate-limit the asker (per mesh link, per app IP) and drop request ids seen within the window
//    (a search that loops back answers empty).
// 2. Local answer: our own record if we serve the kind, plus candidates that serve it.
// 3. With hops left, when we asked ourselves or hold records of the kind from fewer than FIND_ENOUGH
//    networks, forward to up to FIND_FANOUT mesh
//    links drawn at random (never the one it came from), one hop less, all at once, within
//    FIND_HOP_TIMEOUT_MS per hop left.
// 4. Every forwarded record is verified (syntax, and its signature by its own public key, so a relay
//    can neither alter a record nor re-sign it with a key of its own); an answer carrying a bad
//    record or that does not decode is a lie and the caller bans its sender (expired, early or
//    old-format records are only dropped). Records that contradict a key-checked candidate (same
//    proven address, another key) are dropped, and a node we hold a key-checked copy of is answered
//    with that copy unless the forwarded one is newer at the same proven address.
// 5. Merge (one record per node, capped at max_answers) and group by stake address.
import { errorLine, LimitError } from "../errors.ts";
import { Status } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import type { RpcReply } from "../rpc/index.ts";
import type { CoreLink } from "./core-link.ts";
import { decodeFindAnswer, encodeFindAnswer } from "./mesh-messages.ts";
import { METHOD } from "../rpc/index.ts";
import { FIND_HOP_TIMEOUT_MS } from "./mesh-service-constants.ts";
import { isRelayBlameless, provenAddress, recordNodeId, verifyRecord, formatNodeAddress } from "./record.ts";
import { encodeFindRequest, FIND_ENOUGH, FIND_FANOUT, mergeAnswers, networksOf, newFindRequest, nextHop, parseFindRequest, recordsOfKind, createSeenRequests, type FindRequest } from "./search.ts";
import { groupByStake, toProtoGroup, type ServerGroupView } from "./search-groups.ts";
import { createRateLimiter } from "./search-rate-limit.ts";


export interface MeshSearchComponents {
  /** Live mesh links to forward to. */
  links(): CoreLink[];
  /** Our own record when we serve `kind`, plus candidates that serve it. */
  local(kind: string): NodeRecord[];
  /** True when a forwarded record claims an address a key-checked candidate holds with another key. */
  contradicts(rec: NodeRecord): boolean;
  /** Our key-checked copy of a node's record (a candidate), if any. */
  checked?(nodeId: string): NodeRecord | undefined;
  /** Oldest record accepted, in ms (config record_max_age_s). @default the embedded default */
  maxAgeMs?: number;
  /** A peer answered a forwarded search with something malformed or forged. */
  onLie(link: CoreLink, why: string): void;
  /** Message counters. */
  count(direction: "in" | "out", method: string): void;
  now?: () => number;
  /** Most records from one network (/24, /48) in an answer. @default MAX_ANSWERS_PER_NET */
  answersPerNet?: number;
  /** Draws the links a search is forwarded to. @default Math.random */
  rand?: () => number;
}

export interface SearchResult {
  kind: string;
  records: NodeRecord[];
  groups: ServerGroupView[];
}

export interface MeshSearch {
  /** `mesh.find` on a mesh link. */
  onMeshRequest(payload: Uint8Array, link: CoreLink): Promise<RpcReply>;
  /** `mesh.find` from an app over QUIC, rate-limited by its IP. */
  onAppRequest(payload: Uint8Array, remoteIp: string): Promise<RpcReply>;
  /** A search started here (tests, devnet). */
  find(kind: string, opts?: { hops?: number; maxAnswers?: number }): Promise<SearchResult>;
  /** Drops a closed link's rate bucket. */
  forget(linkKey: string): void;
}

function sameProven(a: NodeRecord, b: NodeRecord): boolean {
  const x = provenAddress(a);
  const y = provenAddress(b);
  return x !== null && y !== null && formatNodeAddress(x) === formatNodeAddress(y);
}

export function createMeshSearch(c: MeshSearchComponents): MeshSearch {
  const now = c.now ?? Date.now;
  const seen = createSeenRequests();
  const limiter = createRateLimiter();
  const rand = c.rand ?? Math.random;

  async function run(req: FindRequest, from: CoreLink | null): Promise<SearchResult> {
    const local = recordsOfKind(c.local(req.kind), req.kind);
    const next = nextHop(req);
    let merged = mergeAnswers([], local, { cap: req.maxAnswers, perNet: c.answersPerNet });
    if (next && (from === null || networksOf(local) < FIND_ENOUGH)) {
      const payload = encodeFindRequest(next);
      const timeoutMs = FIND_HOP_TIMEOUT_MS * (next.hops + 1);
      const targets = c.links().filter((l) => l !== from && l.isOpen && l.peerNodeId !== from?.peerNodeId);
      // A partial shuffle: the first FIND_FANOUT are a uniform draw.
      for (let i = 0; i < Math.min(FIND_FANOUT, targets.length); i++) {
        const j = i + Math.floor(rand() * (targets.length - i));
        [targets[i], targets[j]] = [targets[j]!, targets[i]!];
      }
      targets.length = Math.min(FIND_FANOUT, targets.length);
      const answers = await Promise.all(targets.map((link) => ask(link, payload, req.kind, timeoutMs)));
      for (const more of answers) merged = mergeAnswers(merged, more, { cap: req.maxAnswers, perNet: c.answersPerNet });
    }
    return { kind: req.kind, records: merged, groups: groupByStake(merged, req.kind) };
  }

  async function ask(link: CoreLink, payload: Uint8Array, kind: string, timeoutMs: number): Promise<NodeRecord[]> {
    let answer;
    try {
      c.count("out", METHOD.mesh.find);
      answer = await link.request(METHOD.mesh.find, payload, { timeoutMs });
    } catch {
      return []; // slow or gone: the search goes on without it
    }
    if (answer.status !== Status.OK) return [];
    let records: NodeRecord[];
    try {
      records = decodeFindAnswer(answer.payload).records;
    } catch (err) {
      // Too big is not a lie by itself (a forwarder may have merged strangers' large records); only bytes
      // that do not parse are.
      if (!(err instanceof LimitError)) c.onLie(link, `undecodable find answer: ${errorLine(err)}`);
      return [];
    }
    const t = now();
    const good: NodeRecord[] = [];
    for (const rec of records) {
      const check = verifyRecord(rec, t, { maxAgeMs: c.maxAgeMs });
      if (check.ok) good.push(rec);
      else if (!isRelayBlameless(check.reason)) {
        c.onLie(link, `find answer carries a bad record: ${check.reason}`);
        return [];
      }
    }
    return recordsOfKind(good.filter((r) => !c.contradicts(r)).map(preferChecked), kind);
  }

  /** Our key-checked copy instead of a forwarded one, unless the forwarded one is newer at the same
   *  proven address (a re-signed record of a node that did not move). */
  function preferChecked(rec: NodeRecord): NodeRecord {
    const held = c.checked?.(recordNodeId(rec));
    if (!held) return rec;
    return rec.seq > held.seq && sameProven(rec, held) ? rec : held;
  }

  function encode(result: SearchResult): RpcReply {
    return { status: Status.OK, payload: encodeFindAnswer(result.records, result.groups.map(toProtoGroup)) };
  }

  async function answer(payload: Uint8Array, from: CoreLink | null, rateKey: string): Promise<RpcReply> {
    c.count("in", METHOD.mesh.find);
    const parsed = parseFindRequest(payload);
    if (!parsed.ok) return { status: Status.BAD_REQUEST, error: `${parsed.reason}: ${parsed.detail}` };
    const t = now();
    if (!limiter.allow(rateKey, t)) return { status: Status.RATE_LIMITED, error: "too many searches; slow down" };
    // A request id seen before: the search looped back to us; our part is already in the answer.
    if (seen.seen(parsed.request.requestId, t)) return { status: Status.OK, payload: encodeFindAnswer([], []) };
    return encode(await run(parsed.request, from));
  }

  return {
    onMeshRequest: (payload, link) => answer(payload, link, `link:${link.peerNodeId ?? `${link.socketRemote.ip}:${link.socketRemote.port}`}`),
    onAppRequest: (payload, remoteIp) => answer(payload, null, `ip:${remoteIp}`),
    async find(kind, opts = {}) {
      const req = newFindRequest(kind, opts);
      seen.seen(req.requestId, now());
      return run(req, null);
    },
    forget: (key) => limiter.forget(`link:${key}`),
  };
}
