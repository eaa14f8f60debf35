// The named node's side of the key check (key-challenge.ts step 2) as a served method, made cheap for us
// and costly for whoever floods it: an exact replay of a challenge gets the answer already made (sealed to
// the challenger, so it tells a replayer nothing new); an untrusted link gets one key check and is closed
// after a second (a checker dials a fresh link per record). The router's per-source rates (handlers.ts)
// bound the fresh challenges one host or one /24 can send.
import { bytesToHex } from "@noble/hashes/utils.js";
import { BoundedMap } from "../contracts/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { AnswerError, type RpcReply } from "../rpc/index.ts";
import { WS_CLOSE } from "../transport/index.ts";
import { Status, type NodeRecord } from "../wire/index.ts";
import { answerChallenge } from "./key-challenge.ts";
import type { MeshLink } from "./link.ts";
import { addressReachedAt } from "./record.ts";

/** Answers kept for replays: a few hundred × ~150 B. */
const MAX_CACHED_ANSWERS = 256;

export interface KeyCheckStats {
  /** Challenges opened and answered (the costly path). */
  computed: number;
  /** Replays answered from the cache. */
  replayed: number;
  /** Second key checks on one untrusted link, refused. */
  refusedRepeat: number;
}

export interface KeyCheckAnswerer {
  /** `reached`: the connection's ends, so the answer vouches for the address of our record it came to
   *  (a dual-stack node is proven per family). */
  answer(payload: Uint8Array, link: MeshLink | undefined, reached?: { localIp?: string; remoteIp?: string }): RpcReply;
  readonly stats: KeyCheckStats;
}

export function createKeyCheckAnswerer(nodeKey: NodeKey, ownRecord: () => NodeRecord | undefined): KeyCheckAnswerer {
  // Age order: the oldest answer goes first.
  const cache = new BoundedMap<string, { address: string; reply: RpcReply }>(MAX_CACHED_ANSWERS);
  const asked = new WeakSet<MeshLink>();
  const stats: KeyCheckStats = { computed: 0, replayed: 0, refusedRepeat: 0 };

  return {
    stats,
    answer(payload, link, reached) {
      if (link && link.trust === "untrusted") {
        if (asked.has(link)) {
          stats.refusedRepeat++;
          throw new AnswerError(Status.REFUSED, "one key check per first-contact link", { code: WS_CLOSE.policyViolation, reason: "one key check per link" });
        }
        asked.add(link);
      }
      const own = ownRecord();
      if (!own) return { status: Status.REFUSED, error: "this node does not serve (no record)" };
      const address = addressReachedAt(own, reached ?? (link ? { localIp: link.local.ip } : {}));
      const key = `${address} ${bytesToHex(payload)}`;
      const hit = cache.get(key);
      if (hit && hit.address === address) {
        stats.replayed++;
        return hit.reply;
      }
      stats.computed++;
      const answered = answerChallenge(nodeKey, payload, address);
      const reply: RpcReply = answered.ok
        ? { status: Status.OK, payload: answered.answer }
        : { status: answered.reason === "cannot-open" ? Status.UNAUTHENTICATED : Status.BAD_REQUEST, error: `${answered.reason}: ${answered.detail}` };
      cache.setNewest(key, { address, reply });
      return reply;
    },
  };
}
