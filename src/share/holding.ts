// A node's signed answer for its own share-pool entries in one mesh search (ShareHolding, proto/punch.proto).
//
// The holder signs with its node key (XEdDSA over the purpose label, a zero byte and the message with an empty
// signature, as records are signed), and carries its own signed record: the signature binds every entry, the
// kind and the search's request id to the key of a node that advertises the kind. A forwarder of a search
// answer can drop a whole holding, but cannot add, drop or change an entry in one, put a holding under another
// node's key, or replay one into another search. Every check here is on bytes from strangers: it never throws.
import { clone, create, toBinary } from "@bufbuild/protobuf";
import { SEAL_PURPOSE } from "../constants.ts";
import { type NodeKey, xeddsaSign, xeddsaVerify, XEDDSA_SIGNATURE_BYTES } from "../identity/index.ts";
import { SHARE_FETCH_MAX } from "../punch/index.ts";
import { type NodeRecord, type ShareHolding, ShareHoldingSchema } from "../wire/index.ts";
import { recordNodeId, verifyRecord } from "../mesh/index.ts";
import { isSameBytes } from "../mesh/index.ts";

/** A holding older than this is refused (a search takes seconds; the holder signs it when asked). */
export const MAX_HOLDING_AGE_MS = 60_000;
/** A holding issued this far in the future is refused (clock skew). */
const MAX_HOLDING_SKEW_MS = 5 * 60_000;

const encoder = new TextEncoder();

function signedBytes(h: ShareHolding): Uint8Array {
  const copy = clone(ShareHoldingSchema, h);
  copy.signature = new Uint8Array(0);
  const body = toBinary(ShareHoldingSchema, copy);
  const label = encoder.encode(SEAL_PURPOSE.shareHolding);
  const out = new Uint8Array(label.length + 1 + body.length);
  out.set(label, 0);
  out.set(body, label.length + 1);
  return out;
}

/** Our holding for one search: our record, our entries (at most SHARE_FETCH_MAX), signed. */
export function signHolding(
  key: NodeKey,
  init: { holder: NodeRecord; kind: string; requestId: Uint8Array; entries: { ip: string; port: number; verifiedAtMs: number }[]; now: number },
): ShareHolding {
  const h = create(ShareHoldingSchema, {
    holder: init.holder,
    kind: init.kind,
    requestId: init.requestId,
    issuedAtMs: BigInt(Math.floor(init.now)),
    entries: init.entries.slice(0, SHARE_FETCH_MAX).map((e) => ({ ip: e.ip, port: e.port, verifiedAtMs: BigInt(Math.floor(e.verifiedAtMs)) })),
  });
  h.signature = xeddsaSign(key.privateKey, signedBytes(h));
  return h;
}

export type HoldingCheck =
  | { ok: true; nodeId: string }
  /** Something a forwarder could have checked itself (a bad record or signature, too many entries): a lie. */
  | { ok: false; lie: true; why: string }
  /** Not for this search, stale, or a record that expired on the way: dropped without blame. */
  | { ok: false; lie: false; why: string };

/** Checks a holding from a search answer for `kind` and `requestId`. */
export function checkHolding(h: ShareHolding, expect: { kind: string; requestId: Uint8Array; now: number; recordMaxAgeMs?: number }): HoldingCheck {
  try {
    if (!h.holder) return { ok: false, lie: true, why: "holding without a holder record" };
    const rec = verifyRecord(h.holder, expect.now, { maxAgeMs: expect.recordMaxAgeMs });
    if (!rec.ok) return rec.reason === "expired" || rec.reason === "from-future" || rec.reason === "old-format" ? { ok: false, lie: false, why: `holder record: ${rec.reason}` } : { ok: false, lie: true, why: `holder record: ${rec.reason}` };
    if (h.entries.length > SHARE_FETCH_MAX) return { ok: false, lie: true, why: `${h.entries.length} entries in one holding, limit is ${SHARE_FETCH_MAX}` };
    if (h.signature.length !== XEDDSA_SIGNATURE_BYTES || !xeddsaVerify(h.holder.publicKey, signedBytes(h), h.signature)) return { ok: false, lie: true, why: "holding signature does not match its holder's key" };
    // Signed by the holder, so from here on a mismatch is the holder's doing, not the forwarder's.
    if (h.kind !== expect.kind || !isSameBytes(h.requestId, expect.requestId)) return { ok: false, lie: false, why: "holding is for another search" };
    if (!h.holder.kinds.includes(h.kind)) return { ok: false, lie: false, why: "holder does not advertise the kind" };
    const issued = Number(h.issuedAtMs);
    if (issued < expect.now - MAX_HOLDING_AGE_MS || issued > expect.now + MAX_HOLDING_SKEW_MS) return { ok: false, lie: false, why: "holding is stale or from the future" };
    return { ok: true, nodeId: recordNodeId(h.holder) };
  } catch (err) {
    return { ok: false, lie: true, why: `holding could not be checked: ${err instanceof Error ? err.message : String(err)}` };
  }
}
