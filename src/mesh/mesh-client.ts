// Asking a node about the mesh as an app does: `mesh.peers` and `mesh.find` over QUIC (DESIGN §1 `findings peers`, `findings find`; §4 one stream per request; §8).
//
// First contact when only ip:port is known; with "#key" the link is bootstrapped and pinned first
// (DESIGN §3 app bootstrap). Records in the answer are verified here: an app never trusts a relay's
// copy of a record it cannot check, and groups are rebuilt from the verified records.
import { isIP } from "node:net";
import { REQUEST_TIMEOUT_MS } from "../constants.ts";
import { generateNodeKey } from "../identity/index.ts";
import { PeerError } from "../errors.ts";
import { bootstrapApp, wssAppDialer, type BootstrapLink } from "../transport/index.ts";
import { expectOk, type QuicLink } from "../transport/index.ts";
import { createUdpClient } from "../transport/index.ts";
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import { decodeFindAnswer, decodePeersAnswer, encodePeersRequest } from "./mesh-messages.ts";
import { METHOD } from "../rpc/index.ts";
import { FIND_HOP_TIMEOUT_MS, MAX_PEERS_ANSWER_RECORDS } from "./mesh-service-constants.ts";
import { formatNodeAddress, recordNodeId, verifyRecord } from "./record.ts";
import { checkAnswer, makeChallenge } from "./key-challenge.ts";
import { formatAddress } from "../contracts/index.ts";
import { Status, statusName } from "../wire/index.ts";
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
  /** "wss": over a WSS link to the node's TLS port (then `port` is that port). @default "quic" */
  transport?: "quic" | "wss";
  /** Close the socket without waiting for it. @default false */
  closeInBackground?: boolean;
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

async function withLink<T>(target: NodeAskTarget, opts: AskOptions, fn: (link: BootstrapLink & { readonly pinned: boolean }) => Promise<T>): Promise<T> {
  if (opts.transport === "wss") {
    // Apps without UDP: the same requests on a WSS link to the node's TLS port.
    const dialer = wssAppDialer();
    const step = { signal: opts.signal, timeoutMs: opts.timeoutMs ?? REQUEST_TIMEOUT_MS };
    const addr = { ip: target.ip, port: target.port };
    const link = target.publicKey ? (await bootstrapApp(dialer, { addr, nodePublicKey: target.publicKey }, { appKey: generateNodeKey(), ...step })).link : await dialer.dial(addr, step);
    try {
      return await fn({ request: (m, p, o) => link.request(m, p, o), close: () => link.close(), pinned: link.trust === "pinned" });
    } finally {
      link.close();
    }
  }
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
    // Learning a key is a step on the way to another link: its socket closes in the background (QUIC's
    // draining period need not be waited for). One-off asks wait, so a CLI exits with nothing open.
    if (opts.closeInBackground) void client.stop().catch(() => {});
    else await client.stop();
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

/** Per step, when a trusted node is asked for another node's record, in ms. */
const VIA_TIMEOUT_MS = 2_000;

/** A node's key learned from the network: its signed record, checked, and proven by a key challenge. */
export interface LearnedKey {
  publicKey: Uint8Array;
  nodeId: string;
  record: NodeRecord;
  /** "ip:port" of the node that gave the record (the node itself, or a trusted one). */
  recordFrom: string;
}

function hasAddress(rec: NodeRecord, target: { ip: string; port: number }, transport: AskOptions["transport"]): boolean {
  return addressAt(rec, target, transport) !== undefined;
}

/** The record's address entry that `target` dialled (the key answer names it). */
function addressAt(rec: NodeRecord, target: { ip: string; port: number }, transport: AskOptions["transport"]): NodeAddress | undefined {
  const ip = target.ip.toLowerCase();
  return rec.addresses.find((a) => a.ip.toLowerCase() === ip && (transport === "wss" ? a.tcpPort : a.udpPort) === target.port);
}

/**
 * Learns the key of the node at `target` (an address without "#key") the way nodes check each other's records
 * (seed 001 §公钥广播与验证): a record naming that address — from a trusted node (`via`, pinned links) when one
 * knows it, else from the node itself — must carry a valid signature by its own key, and the node at the address
 * must open a sealed challenge to that key and answer with the record's address (`mesh.key-check`, on a
 * first-contact QUIC link). Throws PeerError naming the step that failed. The result is trust on first use:
 * without `via`, whoever answers at the address on first contact is believed.
 */
export async function learnNodeKey(target: { ip: string; port: number }, opts: AskOptions & { via?: NodeAskTarget[] } = {}): Promise<LearnedKey> {
  const where = formatAddress(target.ip, target.port);
  let found: { record: NodeRecord; from: string } | undefined;
  for (const via of opts.via ?? []) {
    if (!via.publicKey) continue;
    try {
      // A trusted node that is slow or gone only delays learning a little.
      const r = await askPeers(via, { signal: opts.signal, timeoutMs: Math.min(opts.timeoutMs ?? REQUEST_TIMEOUT_MS, VIA_TIMEOUT_MS) });
      const rec = r.records.find((x) => hasAddress(x, target, opts.transport));
      if (rec) {
        found = { record: rec, from: formatAddress(via.ip, via.port) };
        break;
      }
    } catch {
      // A trusted node that does not answer is skipped: the node itself is asked next.
    }
  }
  return withLink({ ip: target.ip, port: target.port }, { ...opts, closeInBackground: true }, async (link) => {
    const step = { signal: opts.signal, timeoutMs: opts.timeoutMs };
    if (!found) {
      const answer = await link.request(METHOD.mesh.peers, encodePeersRequest(1), step);
      const records = decodePeersAnswer(expectOk(answer));
      const own = records[0];
      if (!own) throw new PeerError(`Cannot learn the key of ${where}: it gave no record (does it serve? pass ADDR#<key> as \`findings id\` prints it)`);
      const v = verifyRecord(own, Date.now());
      if (!v.ok) throw new PeerError(`Cannot learn the key of ${where}: its record does not verify (${v.reason})`);
      if (!hasAddress(own, target, opts.transport)) throw new PeerError(`Cannot learn the key of ${where}: its record names ${own.addresses.map(formatNodeAddress).join(", ") || "no address"}, not the address dialled`);
      found = { record: own, from: where };
    }
    const rec = found.record;
    let challenge: ReturnType<typeof makeChallenge>;
    try {
      challenge = makeChallenge(generateNodeKey(), rec.publicKey);
    } catch (err) {
      throw new PeerError(`Cannot learn the key of ${where}: the record's key is unusable`, { cause: err });
    }
    const answer = await link.request(METHOD.mesh.keyCheck, challenge.payload, step);
    if (answer.status !== Status.OK) throw new PeerError(`Cannot learn the key of ${where}: the key check was refused (${statusName(answer.status)} ${answer.error})`.trim());
    const check = checkAnswer(challenge.expect, answer.payload, formatNodeAddress(addressAt(rec, target, opts.transport) ?? rec.addresses[0]!));
    if (!check.ok) throw new PeerError(`Cannot learn the key of ${where}: the node there does not prove the record's key (${check.reason})`);
    return { publicKey: rec.publicKey, nodeId: recordNodeId(rec), record: rec, recordFrom: found.from };
  });
}
