// Listed TCP servers of a kind from the whole network (seed 001 §分享池, DESIGN §5, §8). Nodes list only kinds
// they serve, and every node advertises its kinds in its signed record, so a bounded, verified mesh search
// (`mesh.find`, as `findings find` runs it) names every node that may hold servers of the kind. Each holder is
// then asked itself, over a link pinned to the key of its record (the bootstrap proves the key): an entry comes
// only from the node that dialled it back and lists it, never from a node that forwarded a search answer.
// Answers are bounded (the registry answers at most SHARE_FETCH_MAX entries; the decoder has a size limit).
import { isIP } from "node:net";
import { errorLine } from "../errors.ts";
import { type Logger, formatAddress } from "../contracts/index.ts";
import { SHARE_FETCH_MAX } from "../punch/index.ts";
import { shareFetch } from "../share/index.ts";
import { recordNodeId } from "../mesh/index.ts";
import { bootstrapApp, createUdpClient } from "../transport/index.ts";
import type { AppKey } from "../transport/index.ts";
import type { NodeRecord } from "../wire/index.ts";

/** Holders asked at most per search (nearest first, as the search answered them). */
export const MAX_SHARE_HOLDERS_ASKED = 8;
/** Holders asked at once. */
const HOLDERS_IN_PARALLEL = 4;
/** Per holder: bootstrap and fetch, in ms. */
const HOLDER_TIMEOUT_MS = 5_000;

export interface FoundServer {
  /** "ip:port" of the TCP server. */
  address: string;
  /** When its holder last verified it by a TCP dial-back. */
  verifiedAt: Date;
  /** The node that lists it (dialled it back) and answered for it. */
  nodeId: string;
}

export interface ShareSearchInit {
  /** What the client's own node answered (first in the result). */
  own: FoundServer[];
  kind: string;
  /** Verified records of nodes that serve the kind (askFind). */
  records: readonly NodeRecord[];
  /** @default SHARE_FETCH_MAX */
  max?: number;
  appKey: AppKey;
  host?: string;
  signal?: AbortSignal;
  log?: Logger;
}

/** The own node's servers, then those of other holders, without duplicates, up to `max`. */
export async function searchShared(init: ShareSearchInit): Promise<FoundServer[]> {
  const max = Math.min(init.max ?? SHARE_FETCH_MAX, SHARE_FETCH_MAX);
  const out: FoundServer[] = [];
  const seen = new Set<string>();
  const add = (list: FoundServer[]) => {
    for (const s of list) {
      if (out.length >= max || seen.has(s.address)) continue;
      seen.add(s.address);
      out.push(s);
    }
  };
  add(init.own);
  const asked = new Set(init.own.map((s) => s.nodeId));
  const holders: { nodeId: string; ip: string; port: number; publicKey: Uint8Array }[] = [];
  for (const rec of init.records) {
    const nodeId = recordNodeId(rec);
    const addr = rec.addresses.find((a) => a.udpPort !== 0);
    if (!addr || asked.has(nodeId) || !rec.kinds.includes(init.kind)) continue;
    asked.add(nodeId);
    holders.push({ nodeId, ip: addr.ip, port: addr.udpPort, publicKey: rec.publicKey });
    if (holders.length >= MAX_SHARE_HOLDERS_ASKED) break;
  }
  for (let i = 0; i < holders.length && out.length < max; i += HOLDERS_IN_PARALLEL) {
    const batch = holders.slice(i, i + HOLDERS_IN_PARALLEL);
    const lists = await Promise.all(batch.map((h) => askHolder(h, init, max - out.length)));
    for (const l of lists) add(l);
  }
  return out;
}

async function askHolder(h: { nodeId: string; ip: string; port: number; publicKey: Uint8Array }, init: ShareSearchInit, max: number): Promise<FoundServer[]> {
  const signal = init.signal ? AbortSignal.any([init.signal, AbortSignal.timeout(HOLDER_TIMEOUT_MS)]) : AbortSignal.timeout(HOLDER_TIMEOUT_MS);
  const udp = createUdpClient({ log: init.log }, { host: init.host ?? (isIP(h.ip) === 6 ? "::" : "0.0.0.0") });
  try {
    await udp.start();
    const { link } = await bootstrapApp(udp, { addr: h, nodePublicKey: h.publicKey }, { appKey: init.appKey, kind: init.kind, signal });
    const list = await shareFetch(link, init.kind, { max, signal });
    return list.map((e) => ({ address: formatAddress(e.ip, e.port), verifiedAt: new Date(e.verifiedAtMs), nodeId: h.nodeId }));
  } catch (err) {
    // A holder that cannot be reached or proves another key adds nothing; it says nothing about the others.
    init.log?.debug("share holder did not answer", { node: h.nodeId.slice(0, 16), error: errorLine(err) });
    return [];
  } finally {
    await udp.stop().catch(() => {});
  }
}
