// Online help: a node that knows only addresses asks several of them at once for node records (DESIGN §3 first contact; seed 001 §节点组网).
//
// 1. Dial each helper as first contact (untrusted WSS: the link is good for this and nothing else).
// 2. Ask `mesh.peers`; the answer is the helper's own record (if it serves) and a sample of its pool,
//    and the proof of its own record's key at the address we dialled (helper-proof.ts): that record
//    needs no key check of its own.
// 3. Cross-check across answers: every record must verify (a helper sending a forged or broken
//    record is a liar), a helper given with "#key" must not be contradicted about its own address,
//    and addresses claimed by different keys in different answers are reported as conflicts. The
//    caller then key-checks what it merges (record-check.ts), which settles every conflict.
import { bytesToHex } from "@noble/hashes/utils.js";
import { errorLine } from "../errors.ts";
import { formatAddress, type HostPort } from "../contracts/index.ts";
import { Status, statusName } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { addressKeys, normalizeIp } from "./candidate-pool.ts";
import type { MeshNet } from "./core-link.ts";
import { checkProof, dialledAddressOf, makeProofAsk, type ProofExpect } from "./helper-proof.ts";
import { decodePeersReply, encodePeersRequest } from "./mesh-messages.ts";
import type { RecordCheckResult } from "./record-check.ts";
import { METHOD } from "../rpc/index.ts";
import { checkableAddresses, formatNodeAddress, isRelayBlameless, recordNodeId, verifyRecord } from "./record.ts";

/** Timeout of one online-help exchange (dial + mesh.peers), in ms. */
const HELP_TIMEOUT_MS = 5_000;
/** Records asked of each helper; the helper caps it at its mesh_share. */
const HELP_RECORDS_WANTED = 50;

export interface HelpTarget {
  /** TCP (mesh) address. */
  addr: HostPort;
  /** The helper's X25519 key when the address carried "#key" or came from a record. */
  publicKey?: Uint8Array;
  /** Already a checked candidate of ours: its proof would settle nothing, so none is asked. */
  known?: boolean;
}

export interface HelpAnswer {
  target: HelpTarget;
  /** Verified records; empty when the helper failed or lied. */
  records: NodeRecord[];
  /** Why nothing came back (unreachable, refused), or null. */
  error: string | null;
  /** Set when the helper sent something malformed or forged: the caller bans it. */
  lie: string | null;
  /** The outcome of the helper's proof of its own record's key (helper-proof.ts), as a key check of
   *  that record would give it; null when it sent none or its first record does not name the dialled
   *  address (then that record is key-checked as any other). */
  proof: { record: NodeRecord; result: RecordCheckResult } | null;
  /** Our IP as the helper saw it (PeersAnswer observed_ip), or null. */
  observedIp: string | null;
}

export interface HelpRound {
  answers: HelpAnswer[];
  /** Address keys ("ip/tcp/port") that different answers give to different node ids. */
  conflicts: string[];
}

/** Steps 1–3 against every target at once. Never throws. */
export async function askForHelp(
  links: Pick<MeshNet, "dialUntrusted">,
  targets: readonly HelpTarget[],
  opts: HelpOptions,
): Promise<HelpRound> {
  const answers = await Promise.all(targets.map((t) => askOne(links, t, opts)));
  // Cross-check: which node ids each address is given to, across helpers.
  const claims = new Map<string, Set<string>>();
  for (const a of answers) {
    for (const rec of a.records) {
      const id = recordNodeId(rec);
      for (const k of addressKeys(rec)) {
        const ids = claims.get(k) ?? new Set<string>();
        ids.add(id);
        claims.set(k, ids);
      }
    }
  }
  const conflicts = [...claims].filter(([, ids]) => ids.size > 1).map(([k]) => k);
  return { answers, conflicts };
}

export interface HelpOptions {
  now: number;
  maxAgeMs?: number;
  signal?: AbortSignal;
  onRequest?: (method: string) => void;
  /** Clock of the round trip a proven helper record gets as its RTT. @default performance.now */
  clock?: () => number;
}

async function askOne(links: Pick<MeshNet, "dialUntrusted">, target: HelpTarget, opts: HelpOptions): Promise<HelpAnswer> {
  const out: HelpAnswer = { target, records: [], error: null, lie: null, proof: null, observedIp: null };
  const now = opts.clock ?? (() => performance.now());
  const t0 = now();
  const proofAsk = target.known ? null : makeProofAsk();
  let link;
  try {
    link = await links.dialUntrusted(target.addr, { signal: opts.signal, timeoutMs: HELP_TIMEOUT_MS });
  } catch (err) {
    out.error = errorLine(err);
    return out;
  }
  try {
    opts.onRequest?.(METHOD.mesh.peers);
    const answer = await link.request(METHOD.mesh.peers, encodePeersRequest(HELP_RECORDS_WANTED, proofAsk?.ask), { signal: opts.signal, timeoutMs: HELP_TIMEOUT_MS });
    if (answer.status !== Status.OK) {
      out.error = `${statusName(answer.status)} ${answer.error}`.trim();
      return out;
    }
    const rttMs = now() - t0;
    let records: NodeRecord[];
    let proof: Uint8Array;
    let observedIp: string | null;
    try {
      ({ records, proof, observedIp } = decodePeersReply(answer.payload));
    } catch (err) {
      out.lie = `undecodable peers answer: ${errorLine(err)}`;
      return out;
    }
    for (const rec of records) {
      const check = verifyRecord(rec, opts.now, { maxAgeMs: opts.maxAgeMs });
      if (check.ok) continue;
      if (isRelayBlameless(check.reason)) continue; // clocks or an old node, not a lie: dropped below
      out.lie = `shared a bad record: ${check.reason} (${check.detail})`;
      return out;
    }
    const valid = records.filter((r) => verifyRecord(r, opts.now, { maxAgeMs: opts.maxAgeMs }).ok);
    // A helper we know by key must not give its own address to another key.
    if (target.publicKey) {
      const own = `${normalizeIp(target.addr.ip)}/tcp/${target.addr.port}`;
      const wantId = bytesToHex(target.publicKey);
      for (const rec of valid) {
        if (addressKeys(rec).includes(own) && bytesToHex(rec.publicKey) !== wantId) {
          out.lie = `gave its own address ${formatAddress(target.addr.ip, target.addr.port)} to another key`;
          return out;
        }
      }
    }
    out.records = valid;
    out.observedIp = observedIp;
    if (proofAsk && proof.length && valid[0]) out.proof = judgeProof(proofAsk.expect, valid[0], proof, target.addr, rttMs);
    return out;
  } catch (err) {
    out.error = errorLine(err);
    return out;
  } finally {
    link.close();
  }
}

/** Step 3 of helper-proof.ts for the helper's first record: a proof that holds proves the record at the
 *  dialled address, one that does not is a failed key check of that record. A record with several
 *  addresses to check (a dual-stack node) is key-checked at each as before: the proof covers one. */
function judgeProof(expect: ProofExpect, rec: NodeRecord, proof: Uint8Array, dialled: HostPort, rttMs: number): HelpAnswer["proof"] {
  const at = dialledAddressOf(rec, dialled);
  if (!at || checkableAddresses(rec).length !== 1) return null;
  const check = checkProof(expect, rec.publicKey, proof, formatNodeAddress(at));
  if (!check.ok) return { record: rec, result: { ok: false, kind: "key-mismatch", detail: `helper proof: ${check.reason}: ${check.detail}` } };
  return { record: rec, result: { ok: true, rttMs, proven: [at] } };
}
