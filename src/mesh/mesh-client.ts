// Asking a node about the mesh as an app does: `mesh.peers` and `mesh.find` over QUIC (DESIGN §1 `findings peers`, `findings find`; §4 one stream per request; §8).
//
// First contact when only ip:port is known; with "#key" the link is bootstrapped and pinned first
// (DESIGN §3 app bootstrap). Records in the answer are verified here: an app never trusts a relay's
// copy of a record it cannot check, and groups are rebuilt from the verified records.
import { isIP } from "node:net";
import { REQUEST_TIMEOUT_MS } from "../constants.ts";
import { generateNodeKey } from "../identity/index.ts";
import { PeerError } from "../errors.ts";
import { bootstrapApp } from "../transport/index.ts";
import { expectOk, type QuicLink } from "../transport/index.ts";
import { createUdpClient } from "../transport/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { decodeFindAnswer, decodePeersAnswer, encodePeersRequest } from "./mesh-messages.ts";
import { METHOD } from "../rpc/index.ts";
import { FIND_HOP_TIMEOUT_MS, MAX_PEERS_ANSWER_RECORDS } from "./mesh-service-constants.ts";
import { verifyRecord } from "./record.ts";
import { encodeFindRequest, newFindRequest, recordsOfKind } from "./search.ts";
import { groupByStake, type ServerGroupView } from "./search-groups.ts";

export interface NodeAskTarget {
  ip: string;
  /** The node's UDP (QUIC) port. */
  port: number;
  /** The node's X25519 key: with it the request goes over a pinned link. */
  publicKey?: Uint8Array;
}

export interface AskOptions {
  signal?: AbortSignal;
  /** Per step (handshake, request). @default 5000 */
  timeoutMs?: number;
}

export interface PeersResult {
  /** Verified records: the node's own first (when it serves), then its candidates, nearest first. */
  records: NodeRecord[];
  /** Records in the answer that failed verification (left out). */
  rejected: number;
  pinned: boolean;
}

export interface FindResult {
  kind: string;
  records: NodeRecord[];
  groups: ServerGroupView[];
  rejected: number;
  pinned: boolean;
}

async function withLink<T>(target: NodeAskTarget, opts: AskOptions, fn: (link: QuicLink) => Promise<T>): Promise<T> {
  const client = createUdpClient({}, { host: isIP(target.ip) === 6 ? "::" : "0.0.0.0", port: 0 });
  await client.start();
  try {
    const step = { signal: opts.signal, timeoutMs: opts.timeoutMs ?? REQUEST_TIMEOUT_MS };
    const addr = { ip: target.ip, port: target.port };
    const link = target.publicKey
      ? (await bootstrapApp(client, { addr, nodePublicKey: target.publicKey }, { appKey: generateNodeKey(), ...step })).link
      : await client.dial(addr, step);
    return await fn(link);
  } finally {
    await client.stop();
  }
}

function verified(records: readonly NodeRecord[]): { good: NodeRecord[]; rejected: number } {
  const now = Date.now();
  const good = records.filter((r) => verifyRecord(r, now).ok);
  return { good, rejected: records.length - good.length };
}

/** The records a node knows (`findings peers`). */
export async function askPeers(target: NodeAskTarget, opts: AskOptions & { max?: number } = {}): Promise<PeersResult> {
  return withLink(target, opts, async (link) => {
    const answer = await link.request(METHOD.mesh.peers, encodePeersRequest(opts.max ?? MAX_PEERS_ANSWER_RECORDS), { signal: opts.signal, timeoutMs: opts.timeoutMs });
    const { good, rejected } = verified(decodePeersAnswer(expectOk(answer)));
    return { records: good, rejected, pinned: link.pinned };
  });
}

/** Nodes serving `kind`, from the node and its mesh (`findings find`). */
export async function askFind(target: NodeAskTarget, kind: string, opts: AskOptions & { hops?: number; maxAnswers?: number } = {}): Promise<FindResult> {
  let req;
  try {
    req = newFindRequest(kind, { hops: opts.hops, maxAnswers: opts.maxAnswers });
    encodeFindRequest(req);
  } catch (err) {
    throw new PeerError(`Cannot search for ${JSON.stringify(kind)}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return withLink(target, opts, async (link) => {
    // The node searches its mesh before answering: allow the hop budget on top of the request.
    const timeoutMs = (opts.timeoutMs ?? REQUEST_TIMEOUT_MS) + FIND_HOP_TIMEOUT_MS * req.hops;
    const answer = await link.request(METHOD.mesh.find, encodeFindRequest(req), { signal: opts.signal, timeoutMs });
    const { good, rejected } = verified(decodeFindAnswer(expectOk(answer)).records);
    const records = recordsOfKind(good, kind);
    return { kind, records, groups: groupByStake(records, kind), rejected: rejected + good.length - records.length, pinned: link.pinned };
  });
}
