// App side of the TCP server registry: register my public TCP server for a kind, fetch a few listed ones
// (seed 001 §分享池; DESIGN §5). Both go over a pinned, bound link to the node (bootstrapApp).
import { METHOD } from "../rpc/index.ts";
import { PeerError } from "../errors.ts";
import type { BootstrapLink } from "../transport/index.ts";
import { decodeMessage, encodeMessage, Status, statusName } from "../wire/index.ts";
import { ShareFetchSchema, ShareListSchema, ShareRegisterAnswerSchema, ShareRegisterSchema } from "../wire/index.ts";
import { SHARE_FETCH_MAX } from "../punch/index.ts";
import { REQUEST_TIMEOUT_MS } from "../constants.ts";

/** Time a searched fetch may take beyond a plain request, in ms: the mesh hops (1 s each, 3 at most) and the
 *  node's TCP dials of what it found (3 s). */
const SHARE_SEARCH_EXTRA_MS = 7_000;

export interface SharedServer {
  ip: string;
  port: number;
  /** Last successful dial-back by the node, ms since the epoch. */
  verifiedAtMs: number;
  /** In a searched answer, the node that lists it; "" = the node asked. */
  nodeId: string;
}

function refused(method: string, status: Status, error: string): PeerError {
  return new PeerError(`${method} refused (${statusName(status)}): ${error || "no reason given"}`);
}

/** Asks the node to list our TCP server (the link's source IP, `port`); resolves once it dialled us back. */
export async function shareRegister(link: Pick<BootstrapLink, "request">, server: { kind: string; port: number }, opts: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<{ ip: string; port: number }> {
  const answer = await link.request(METHOD.share.register, encodeMessage(ShareRegisterSchema, { kind: server.kind, port: server.port }), opts);
  if (answer.status !== Status.OK) throw refused(METHOD.share.register, answer.status, answer.error);
  const m = decodeMessage(ShareRegisterAnswerSchema, answer.payload, "ShareRegisterAnswer");
  return { ip: m.ip, port: m.port };
}

/** Up to `max` (≤ 6) listed servers of `kind`; with `hops` > 0 the node also searches the mesh. */
export async function shareFetch(link: Pick<BootstrapLink, "request">, kind: string, opts: { max?: number; hops?: number; signal?: AbortSignal; timeoutMs?: number } = {}): Promise<SharedServer[]> {
  // A search waits for the mesh (a hop budget) and the node's own TCP dials of what it found.
  const timeoutMs = opts.hops ? (opts.timeoutMs ?? REQUEST_TIMEOUT_MS) + SHARE_SEARCH_EXTRA_MS : opts.timeoutMs;
  const answer = await link.request(METHOD.share.fetch, encodeMessage(ShareFetchSchema, { kind, max: opts.max ?? SHARE_FETCH_MAX, hops: opts.hops ?? 0 }), { signal: opts.signal, timeoutMs });
  if (answer.status !== Status.OK) throw refused(METHOD.share.fetch, answer.status, answer.error);
  const m = decodeMessage(ShareListSchema, answer.payload, "ShareList");
  return m.entries.slice(0, SHARE_FETCH_MAX).map((e) => ({ ip: e.ip, port: e.port, verifiedAtMs: Number(e.verifiedAtMs), nodeId: e.nodeId }));
}
