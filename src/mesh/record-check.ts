// Reachability and key check of a shared record before it joins the candidate pool (seed 001 §候选池 可连接性测试, §公钥广播与验证; DESIGN §3).
//
// 1. Dial the record's TCP address as first contact (no pin: the record's SPKI belongs to one run
//    and the key is what we verify). A failed dial means "unreachable", not "lying".
// 2. Send `mesh.key-check` with Seal(A) to the record's key; the named node answers
//    Seal(A ‖ its address) (key-challenge.ts).
// 3. An answer that does not prove the key (UNAUTHENTICATED, a box we cannot open, another A or
//    address) is a key failure: evidence against this record only (record-merge.ts), never against
//    who shared it, since the named node sees who challenges it and may answer each differently.
import { errorLine } from "../errors.ts";
import type { NodeKey } from "../identity/index.ts";
import type { HostPort } from "../contracts/index.ts";
import { Status, statusName } from "../wire/index.ts";
import type { NodeAddress, NodeRecord } from "../wire/index.ts";
import { answerChallenge, checkAnswer, makeChallenge } from "./key-challenge.ts";
import type { RpcReply } from "../rpc/index.ts";
import { METHOD } from "../rpc/index.ts";
import type { MeshNet } from "./core-link.ts";
import { addressReachedAt, checkableAddresses, formatNodeAddress, provenAddress } from "./record.ts";

/** Timeout of a key check (dial + challenge), in ms: a loaded node still answers in well under it. */
const KEY_CHECK_TIMEOUT_MS = 5_000;

export type RecordCheckResult =
  /** `proven`: the record's addresses whose node proved the key when dialled there (at least one). Only
   *  these may be dialled or counted as the node's; the others are its word only. */
  | { ok: true; rttMs: number; proven: NodeAddress[] }
  /** No TCP address, dial failed, timed out, or the node does not serve: not evidence of a lie. */
  | { ok: false; kind: "unreachable"; detail: string }
  /** The node at an address the record names could not prove the record's key: the record is forged,
   *  or claims an address that is someone else's. */
  | { ok: false; kind: "key-mismatch"; detail: string };

type AddressCheck = { ok: true; rttMs: number } | { ok: false; kind: "unreachable" | "key-mismatch"; detail: string };

/** The TCP (mesh) address of a record's first address that has one (its primary address). */
export function recordTcpAddress(rec: NodeRecord): HostPort | null {
  const a = provenAddress(rec);
  return a ? { ip: a.ip, port: a.tcpPort } : null;
}

/** Steps 1–3 from the checker's side, for each address of the record with a TCP port (a dual-stack node
 *  lists one per family), in parallel. Never throws. */
export async function checkRecord(
  links: Pick<MeshNet, "dialUntrusted">,
  nodeKey: NodeKey,
  rec: NodeRecord,
  opts: { signal?: AbortSignal; timeoutMs?: number; onRequest?: (method: string) => void; now?: () => number } = {},
): Promise<RecordCheckResult> {
  const targets = checkableAddresses(rec);
  if (targets.length === 0) return { ok: false, kind: "unreachable", detail: "the record has no TCP address" };
  const results = await Promise.all(targets.map((a) => checkAddress(links, nodeKey, rec, a, opts)));
  const mismatch = results.findIndex((r) => !r.ok && r.kind === "key-mismatch");
  if (mismatch >= 0) {
    const r = results[mismatch] as { detail: string };
    return { ok: false, kind: "key-mismatch", detail: targets.length > 1 ? `at ${formatNodeAddress(targets[mismatch]!)}: ${r.detail}` : r.detail };
  }
  const proven: NodeAddress[] = [];
  let rttMs = Infinity;
  results.forEach((r, i) => {
    if (!r.ok) return;
    proven.push(targets[i]!);
    rttMs = Math.min(rttMs, r.rttMs);
  });
  if (proven.length === 0) return { ok: false, kind: "unreachable", detail: (results[0] as { detail: string }).detail };
  return { ok: true, rttMs, proven };
}

async function checkAddress(
  links: Pick<MeshNet, "dialUntrusted">,
  nodeKey: NodeKey,
  rec: NodeRecord,
  target: NodeAddress,
  opts: { signal?: AbortSignal; timeoutMs?: number; onRequest?: (method: string) => void; now?: () => number },
): Promise<AddressCheck> {
  const addr = { ip: target.ip, port: target.tcpPort };
  const timeoutMs = opts.timeoutMs ?? KEY_CHECK_TIMEOUT_MS;
  let challenge: ReturnType<typeof makeChallenge>;
  try {
    challenge = makeChallenge(nodeKey, rec.publicKey);
  } catch (err) {
    // A key that cannot be sealed to (low-order point) cannot belong to anyone.
    return { ok: false, kind: "key-mismatch", detail: `unusable public key: ${errorLine(err)}` };
  }
  const now = opts.now ?? (() => performance.now());
  const t0 = now();
  let link;
  try {
    link = await links.dialUntrusted(addr, { signal: opts.signal, timeoutMs });
  } catch (err) {
    return { ok: false, kind: "unreachable", detail: errorLine(err) };
  }
  try {
    opts.onRequest?.(METHOD.mesh.keyCheck);
    const answer = await link.request(METHOD.mesh.keyCheck, challenge.payload, { signal: opts.signal, timeoutMs });
    const rttMs = now() - t0;
    if (answer.status === Status.UNAUTHENTICATED) return { ok: false, kind: "key-mismatch", detail: `the node at the address cannot open the challenge: ${answer.error}` };
    if (answer.status !== Status.OK) return { ok: false, kind: "unreachable", detail: `${statusName(answer.status)} ${answer.error}`.trim() };
    // The answer names the address it was reached at: it must be the one dialled.
    const check = checkAnswer(challenge.expect, answer.payload, formatNodeAddress(target));
    if (!check.ok) return { ok: false, kind: "key-mismatch", detail: `${check.reason}: ${check.detail}` };
    return { ok: true, rttMs };
  } catch (err) {
    return { ok: false, kind: "unreachable", detail: errorLine(err) };
  } finally {
    link.close();
  }
}

/** Step 2 on the named node: answers a challenge for our own record, vouching for the address of it
 *  the challenge reached (`reached`: the connection's ends; none = the first address). `ownRecord` is
 *  undefined while we do not serve (then we have no address to vouch for). */
export function answerKeyCheck(nodeKey: NodeKey, payload: Uint8Array, ownRecord: NodeRecord | undefined, reached: { localIp?: string; remoteIp?: string } = {}): RpcReply {
  if (!ownRecord) return { status: Status.REFUSED, error: "this node does not serve (no record)" };
  const answered = answerChallenge(nodeKey, payload, addressReachedAt(ownRecord, reached));
  if (answered.ok) return { status: Status.OK, payload: answered.answer };
  const status = answered.reason === "cannot-open" ? Status.UNAUTHENTICATED : Status.BAD_REQUEST;
  return { status, error: `${answered.reason}: ${answered.detail}` };
}
