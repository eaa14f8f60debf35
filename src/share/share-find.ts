// Listed TCP servers of a kind through the mesh (seed 001 §分享池; DESIGN §5, §8), the way mesh.find finds
// nodes: `share.find` on mesh links with a hop budget, request ids remembered to cut loops, a rate limit per
// link, bounded answers.
//
// 1. A node answers with its own holding (holding.ts: its fresh entries of the kind, signed with its node key
//    for this request id, with its own record) when it serves the kind and lists something.
// 2. With hops left it forwards the request to every mesh link but the one it came from, one hop less, all at
//    once within FIND_HOP_TIMEOUT_MS per hop left, and checks every holding in the answers (holding.ts): an
//    answer that does not decode or carries a holding it could have checked itself (a bad record or
//    signature, too many entries) is a lie and its sender is banned; one over the size limit, stale or for
//    another search is dropped without blame.
// 3. Merge: one holding per holder, at most MAX_SHARE_HOLDINGS and MAX_SHARE_ANSWER_BYTES.
// So an entry is only ever answered by the node that lists it: forwarders relay signed holdings whole.
import { randomBytes } from "@noble/hashes/utils.js";
import { toBinary } from "@bufbuild/protobuf";
import { errorLine, LimitError } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import { createRateLimiter, createSeenRequests, FIND_HOP_TIMEOUT_MS, MAX_SEARCH_HOPS, type CoreLink } from "../mesh/index.ts";
import { METHOD, type RpcReply } from "../rpc/index.ts";
import { decodeMessage, encodeMessage, isValidKind, Status } from "../wire/index.ts";
import { type NodeRecord, type ShareHolding, ShareFindAnswerSchema, ShareFindRequestSchema, ShareHoldingSchema } from "../wire/index.ts";
import { checkHolding, signHolding } from "./holding.ts";

/** Holdings in one answer: 8 × (a record ≤ 4 KiB + 6 entries) stays under the envelope limit. */
export const MAX_SHARE_HOLDINGS = 8;
/** Bytes of holdings in one answer (the envelope holds 64 KiB). */
const MAX_SHARE_ANSWER_BYTES = 48 * 1024;
/** Largest ShareFindAnswer decoded. */
const MAX_SHARE_FIND_ANSWER_BYTES = 64 * 1024;
/** Largest ShareFindRequest accepted: a 16-byte id, a kind, a varint. */
export const MAX_SHARE_FIND_REQUEST_BYTES = 256;
const REQUEST_ID_BYTES = 16;

export interface ShareFindComponents {
  nodeKey: NodeKey;
  /** Live mesh links to forward to. */
  links(): CoreLink[];
  /** Our record while we serve. */
  ownRecord(): NodeRecord | undefined;
  /** Our fresh entries of `kind` (the share pool's fetch). */
  local(kind: string): { ip: string; port: number; verifiedAtMs: number }[];
  /** A mesh peer answered with something it could have checked itself. */
  onLie(link: CoreLink, why: string): void;
  now(): number;
  /** Oldest holder record accepted, in ms (config record_max_age_s). */
  recordMaxAgeMs?: number;
}

export interface ShareFind {
  /** `share.find` on a mesh link. */
  onMeshRequest(payload: Uint8Array, link: CoreLink): Promise<RpcReply>;
  /** A search started here (an app's share.fetch with hops): checked holdings of other nodes. */
  search(kind: string, hops: number): Promise<{ nodeId: string; holding: ShareHolding }[]>;
  counters(): { searches: number; holdingsDropped: number; lies: number };
}

export function createShareFind(c: ShareFindComponents): ShareFind {
  const seen = createSeenRequests();
  const limiter = createRateLimiter();
  const counters = { searches: 0, holdingsDropped: 0, lies: 0 };

  function own(kind: string, requestId: Uint8Array): ShareHolding[] {
    const rec = c.ownRecord();
    if (!rec || !rec.kinds.includes(kind)) return [];
    const entries = c.local(kind);
    return entries.length ? [signHolding(c.nodeKey, { holder: rec, kind, requestId, entries, now: c.now() })] : [];
  }

  async function ask(link: CoreLink, payload: Uint8Array, kind: string, requestId: Uint8Array, timeoutMs: number): Promise<{ nodeId: string; holding: ShareHolding }[]> {
    let answer;
    try {
      answer = await link.request(METHOD.share.find, payload, { timeoutMs });
    } catch {
      return []; // slow or gone: the search goes on without it
    }
    if (answer.status !== Status.OK) return [];
    let holdings: ShareHolding[];
    try {
      holdings = decodeMessage(ShareFindAnswerSchema, answer.payload, "ShareFindAnswer", MAX_SHARE_FIND_ANSWER_BYTES).holdings;
    } catch (err) {
      if (err instanceof LimitError) return [];
      counters.lies++;
      c.onLie(link, `undecodable share.find answer: ${errorLine(err)}`);
      return [];
    }
    if (holdings.length > MAX_SHARE_HOLDINGS) holdings = holdings.slice(0, MAX_SHARE_HOLDINGS);
    const good: { nodeId: string; holding: ShareHolding }[] = [];
    const now = c.now();
    for (const h of holdings) {
      const check = checkHolding(h, { kind, requestId, now, recordMaxAgeMs: c.recordMaxAgeMs });
      if (check.ok) good.push({ nodeId: check.nodeId, holding: h });
      else if (check.lie) {
        counters.lies++;
        c.onLie(link, `share.find answer carries a bad holding: ${check.why}`);
        return [];
      } else counters.holdingsDropped++;
    }
    return good;
  }

  /** Own holding first, then forwarded ones: one per holder, within the count and byte caps. */
  async function run(kind: string, hops: number, requestId: Uint8Array, from: CoreLink | null, withOwn: boolean): Promise<{ nodeId: string; holding: ShareHolding }[]> {
    const ownNodeId = c.nodeKey.nodeId;
    const out: { nodeId: string; holding: ShareHolding }[] = withOwn ? own(kind, requestId).map((holding) => ({ nodeId: ownNodeId, holding })) : [];
    const ids = new Set([ownNodeId, ...out.map((h) => h.nodeId)]);
    if (hops > 0) {
      const payload = encodeMessage(ShareFindRequestSchema, { requestId, kind, hops: hops - 1 });
      const targets = c.links().filter((l) => l !== from && l.isOpen && l.peerNodeId !== null && l.peerNodeId !== from?.peerNodeId);
      const answers = await Promise.all(targets.map((l) => ask(l, payload, kind, requestId, FIND_HOP_TIMEOUT_MS * hops)));
      let bytes = out.reduce((n, h) => n + toBinary(ShareHoldingSchema, h.holding).length, 0);
      for (const h of answers.flat()) {
        if (out.length >= MAX_SHARE_HOLDINGS || ids.has(h.nodeId)) continue;
        const size = toBinary(ShareHoldingSchema, h.holding).length;
        if (bytes + size > MAX_SHARE_ANSWER_BYTES) continue;
        ids.add(h.nodeId);
        bytes += size;
        out.push(h);
      }
    }
    return out;
  }

  return {
    async onMeshRequest(payload, link) {
      let req;
      try {
        req = decodeMessage(ShareFindRequestSchema, payload, "ShareFindRequest", MAX_SHARE_FIND_REQUEST_BYTES);
      } catch (err) {
        return { status: Status.BAD_REQUEST, error: errorLine(err) };
      }
      if (req.requestId.length !== REQUEST_ID_BYTES) return { status: Status.BAD_REQUEST, error: `request id must be ${REQUEST_ID_BYTES} bytes, got ${req.requestId.length}` };
      if (!isValidKind(req.kind)) return { status: Status.BAD_REQUEST, error: `kind ${JSON.stringify(req.kind.slice(0, 80))} is not allowed` };
      const now = c.now();
      if (!limiter.allow(`link:${link.peerNodeId ?? `${link.socketRemote.ip}:${link.socketRemote.port}`}`, now)) return { status: Status.RATE_LIMITED, error: "too many share searches; slow down" };
      // A request id seen before: the search looped back; our part is already in the answer.
      if (seen.seen(req.requestId, now)) return { status: Status.OK, payload: encodeMessage(ShareFindAnswerSchema, { holdings: [] }) };
      const found = await run(req.kind, Math.min(req.hops, MAX_SEARCH_HOPS), req.requestId, link, true);
      return { status: Status.OK, payload: encodeMessage(ShareFindAnswerSchema, { holdings: found.map((h) => h.holding) }) };
    },
    async search(kind, hops) {
      counters.searches++;
      const requestId = randomBytes(REQUEST_ID_BYTES);
      seen.seen(requestId, c.now());
      return run(kind, Math.min(hops, MAX_SEARCH_HOPS), requestId, null, false);
    },
    counters: () => ({ ...counters }),
  };
}
