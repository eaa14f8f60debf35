// Search by app kind across the mesh: request checks, request-id de-duplication, hop limit, answer merging (DESIGN §8).
//
// A node answers `findings find KIND` from its own records and forwards the request to its mesh
// links with one hop less. Loops are cut by remembering request ids for a window; floods are cut by
// the hop limit and by a per-link rate limit (search-rate-limit.ts). Server groups: search-groups.ts.
import { create, toBinary } from "@bufbuild/protobuf";
import { randomBytes } from "@noble/hashes/utils.js";
import { BoundedMap } from "../contracts/index.ts";
import { LimitError } from "../errors.ts";
import { decodeMessage } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { FindRequestSchema, type FindRequest } from "../wire/index.ts";
import { isValidKind } from "../wire/index.ts";
import { netPrefixes } from "./candidate-pool.ts";
import { netGroupOf } from "../rpc/index.ts";
import { normalizeIp } from "./candidate-addresses.ts";
import { provenAddress, recordNodeId } from "./record.ts";

/** Hops a search may travel through the mesh (requests asking for more are clamped). */
export const MAX_SEARCH_HOPS = 3;
/** Hops of a search started here unless asked otherwise: with FIND_FANOUT links a hop and a shortlist
 *  of ~100 candidates at each node, 2 hops ask up to ~70 nodes and see several thousand records, which
 *  finds a kind served by 1 % of a 10,000-node network (the simulator: src/sim). */
export const DEFAULT_SEARCH_HOPS = 2;
/** Most mesh links one node forwards a search to (drawn at random), so the cost of a search grows
 *  with the fan-out and the hops, not with the number of links each node holds. */
export const FIND_FANOUT = 8;
/** A forwarder that holds records of the kind from this many network groups (/16, /32) answers without
 *  forwarding: the search only travels on where the answer is still thin. Groups, not /24s: keys in a
 *  few /24s of one provider that claim every kind would otherwise stop every search at its first hop.
 *  The asker itself always forwards, so its answer never rests on one pool. */
export const FIND_ENOUGH = 3;
/** Most records from one network (/24, /48) in one answer unless told otherwise (a node passes half its
 *  candidates_per_prefix), so a few networks full of keys that claim every kind cannot fill an answer. */
export const MAX_ANSWERS_PER_NET = 2;
/** How long a request id is remembered, so a search that loops back is dropped. */
const DEFAULT_SEEN_WINDOW_MS = 60_000;
/** Most request ids remembered at once (memory bound under a flood). */
const MAX_SEEN_REQUESTS = 10_000;
/** Request id length: 16 random bytes make collisions negligible. */
const SEARCH_REQUEST_ID_BYTES = 16;
/** Most records in one search answer: fits MAX_ENVELOPE_BYTES with typical records. */
export const MAX_SEARCH_ANSWERS = 50;

export type { FindRequest };

/** Largest FindRequest accepted: 16-byte id, a 64-char kind, two varints. */
const MAX_FIND_REQUEST_BYTES = 256;

export type FindRequestFailure = "too-large" | "undecodable" | "bad-request-id" | "bad-kind";

/** A new search for `kind` with a fresh random id and the full hop budget. */
export function newFindRequest(kind: string, options: { hops?: number; maxAnswers?: number; random?: (n: number) => Uint8Array } = {}): FindRequest {
  return create(FindRequestSchema, {
    requestId: (options.random ?? randomBytes)(SEARCH_REQUEST_ID_BYTES),
    kind,
    hops: Math.min(options.hops ?? DEFAULT_SEARCH_HOPS, MAX_SEARCH_HOPS),
    maxAnswers: Math.min(options.maxAnswers ?? MAX_SEARCH_ANSWERS, MAX_SEARCH_ANSWERS),
  });
}

export function encodeFindRequest(req: FindRequest): Uint8Array {
  return toBinary(FindRequestSchema, req);
}

/** Decodes and checks a FindRequest from the network; never throws. Hops and max_answers are
 *  clamped to our limits (a peer asking for 1000 hops gets MAX_SEARCH_HOPS), and max_answers 0
 *  means "as many as allowed". */
export function parseFindRequest(bytes: Uint8Array): { ok: true; request: FindRequest } | { ok: false; reason: FindRequestFailure; detail: string } {
  let req: FindRequest;
  try {
    req = decodeMessage(FindRequestSchema, bytes, "find request", MAX_FIND_REQUEST_BYTES);
  } catch (err) {
    return { ok: false, reason: err instanceof LimitError ? "too-large" : "undecodable", detail: err instanceof Error ? err.message : String(err) };
  }
  if (req.requestId.length !== SEARCH_REQUEST_ID_BYTES) return { ok: false, reason: "bad-request-id", detail: `request id must be ${SEARCH_REQUEST_ID_BYTES} bytes, got ${req.requestId.length}` };
  if (!isValidKind(req.kind)) return { ok: false, reason: "bad-kind", detail: `kind ${JSON.stringify(req.kind.slice(0, 80))} is not allowed` };
  req.hops = Math.min(req.hops, MAX_SEARCH_HOPS);
  req.maxAnswers = req.maxAnswers === 0 ? MAX_SEARCH_ANSWERS : Math.min(req.maxAnswers, MAX_SEARCH_ANSWERS);
  return { ok: true, request: req };
}

/** The request to forward to mesh links: one hop less, or null when no hops are left (answer from
 *  own records only). Incoming hop counts above MAX_SEARCH_HOPS are clamped first. */
export function nextHop(req: FindRequest): FindRequest | null {
  const hops = Math.min(req.hops, MAX_SEARCH_HOPS);
  if (hops <= 0) return null;
  return create(FindRequestSchema, { requestId: req.requestId, kind: req.kind, hops: hops - 1, maxAnswers: req.maxAnswers });
}

export interface SeenRequests {
  readonly size: number;
  /** True when `requestId` was seen within the window (a duplicate: drop it); otherwise remembers it
   *  and returns false. */
  seen(requestId: Uint8Array | string, now: number): boolean;
}

export interface SeenRequestsInit {
  /** @default DEFAULT_SEEN_WINDOW_MS (60 s) */
  windowMs?: number;
  /** Most ids held; past it the oldest is forgotten. @default MAX_SEEN_REQUESTS */
  maxEntries?: number;
}

export function createSeenRequests(init: SeenRequestsInit = {}): SeenRequests {
  const windowMs = init.windowMs ?? DEFAULT_SEEN_WINDOW_MS;
  const maxEntries = init.maxEntries ?? MAX_SEEN_REQUESTS;
  // Age order is arrival order, so expired ids sit at the front; past maxEntries the oldest goes, in O(1).
  const ids = new BoundedMap<string, number>(maxEntries);
  return {
    get size() {
      return ids.size;
    },
    seen(requestId, now) {
      ids.dropOldestWhile((until) => until <= now);
      const key = typeof requestId === "string" ? requestId : Buffer.from(requestId).toString("hex");
      const until = ids.get(key);
      if (until !== undefined && until > now) return true;
      ids.setNewest(key, now + windowMs);
      return false;
    },
  };
}

/** Merges answers: one record per node id (the highest seq wins), first come first kept, at most
 *  `cap` records (@default MAX_SEARCH_ANSWERS) and `perNet` per network of a proven address
 *  (@default MAX_ANSWERS_PER_NET). Returns a new list. */
export function mergeAnswers(into: readonly NodeRecord[], more: readonly NodeRecord[], options: { cap?: number; perNet?: number } = {}): NodeRecord[] {
  const cap = options.cap ?? MAX_SEARCH_ANSWERS;
  const perNet = options.perNet ?? MAX_ANSWERS_PER_NET;
  const byId = new Map<string, NodeRecord>();
  const inNet = new Map<string, number>();
  for (const rec of [...into, ...more]) {
    const id = recordNodeId(rec);
    const prev = byId.get(id);
    if (prev) {
      if (rec.seq > prev.seq) byId.set(id, rec);
    } else if (byId.size < cap) {
      const net = netPrefixes(rec)[0];
      if (net !== undefined && (inNet.get(net) ?? 0) >= perNet) continue;
      if (net !== undefined) inNet.set(net, (inNet.get(net) ?? 0) + 1);
      byId.set(id, rec);
    }
  }
  return [...byId.values()];
}

/** Network groups (/16, /32) of the records' proven addresses. */
export function networksOf(records: readonly NodeRecord[]): number {
  const groups = new Set<string>();
  for (const r of records) {
    const a = provenAddress(r);
    if (a) groups.add(netGroupOf(normalizeIp(a.ip)));
  }
  return groups.size;
}

/** Records of `kind` from a merged answer, keeping only those that serve it (a peer's answer may
 *  carry others by mistake or malice). */
export function recordsOfKind(records: readonly NodeRecord[], kind: string): NodeRecord[] {
  return records.filter((r) => r.kinds.includes(kind));
}
