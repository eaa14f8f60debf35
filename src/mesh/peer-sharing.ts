// Peer sharing (seed 001 §候选池: 每次新建连接时交换候选; DESIGN §5): the `mesh.peers` answer, one
// function for both transports, and the exchange we run on each new mesh link (and on pool refresh).
//
// Answer: our own record (while we serve) first, and the proof of its key when the asker asks for one
// (helper-proof.ts), then
// - to a mesh peer or a first contact over WSS: a random sample of ~mesh_share candidates (not the
//   asker's own record), as the seed's exchange asks;
// - to an app over QUIC (`findings peers`): the shortlist by RTT, up to MAX_PEERS_ANSWER_RECORDS.
// Each asker (link peer id, or source IP) is rate-limited; a banned asker is refused.
import { errorLine } from "../errors.ts";
import { Status, type Envelope } from "../wire/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import type { CandidatePool, Rand } from "./candidate-pool.ts";
import type { CoreLink } from "./core-link.ts";
import type { RpcReply } from "../rpc/index.ts";
import type { NodeKey } from "../identity/index.ts";
import { answerProof } from "./helper-proof.ts";
import { decodePeersAnswer, decodePeersAsk, encodePeersAnswer, encodePeersRequest } from "./mesh-messages.ts";
import { addressReachedAt } from "./record.ts";
import { METHOD } from "../rpc/index.ts";
import { MAX_PEERS_ANSWER_RECORDS } from "./mesh-service-constants.ts";
import { createRateLimiter, type RateLimiter } from "./search-rate-limit.ts";

/** mesh.peers one link or source IP may ask: 2 per second, bursts of 20 (a helper serves many newcomers at once). */
const PEERS_RATE_PER_S = 2;
const PEERS_BURST = 20;

export interface PeersAsker {
  /** "link": a peer over WSS (mesh or first contact); "app": over QUIC. */
  via: "link" | "app";
  /** Rate-limit bucket: `id:<node id>` for mesh peers, `ip:<source>` otherwise. */
  rateKey: string;
  /** The asker's node id, left out of the sample. */
  peerId?: string | null;
  banned: boolean;
  /** The connection's ends: the proof vouches for the address of our record it reached; the remote
   *  one is told to an asker of a proof (PeersAnswer observed_ip). */
  reached?: { localIp?: string; remoteIp?: string };
}

export interface PeerSharing {
  answer(payload: Uint8Array, asker: PeersAsker, now: number): RpcReply;
  /** Asks `link` for ~mesh_share records. Resolves with them, or null when the link went or refused;
   *  an undecodable answer is a lie, given to `onLie`. Never throws. */
  ask(link: CoreLink, opts: { signal?: AbortSignal; onLie(why: string): void }): Promise<NodeRecord[] | null>;
}

export interface PeerSharingInit {
  candidates: CandidatePool;
  ownRecord(): NodeRecord | undefined;
  /** Our key, for the proof of our record's key a first contact may ask (helper-proof.ts); without it
   *  no proof is given. */
  nodeKey?: NodeKey;
  /** @default PEERS_RATE_PER_S, PEERS_BURST per asker */
  limiter?: RateLimiter;
  /** config `mesh_share`. */
  shareCount: number;
  rand: Rand;
  /** Message counter for what we send. */
  countOut?(method: string): void;
}

export function createPeerSharing(init: PeerSharingInit): PeerSharing {
  const { candidates, shareCount } = init;
  const limiter = init.limiter ?? createRateLimiter({ ratePerS: PEERS_RATE_PER_S, burst: PEERS_BURST });
  return {
    answer(payload, asker, now) {
      if (asker.banned) return { status: Status.REFUSED, error: "banned" };
      if (!limiter.allow(asker.rateKey, now)) return { status: Status.RATE_LIMITED, error: "too many peers requests; slow down" };
      let ask: ReturnType<typeof decodePeersAsk>;
      try {
        ask = decodePeersAsk(payload);
      } catch (err) {
        return { status: Status.BAD_REQUEST, error: errorLine(err) };
      }
      const { max } = ask;
      const own = init.ownRecord();
      const mine = own ? [own] : [];
      // The proof of our own record's key, when asked and while we serve (helper-proof.ts).
      let proof: Uint8Array | undefined;
      const observedIp = ask.proof ? asker.reached?.remoteIp : undefined;
      if (ask.proof && own && init.nodeKey) {
        const proved = answerProof(init.nodeKey, ask.proof, addressReachedAt(own, asker.reached ?? {}));
        if (!proved.ok) return { status: Status.BAD_REQUEST, error: `proof: ${proved.reason}: ${proved.detail}` };
        proof = proved.proof;
      }
      if (asker.via === "link") {
        const n = Math.min(max || shareCount, shareCount);
        return { status: Status.OK, payload: encodePeersAnswer([...mine, ...candidates.share(n, asker.peerId ?? undefined, init.rand)], proof, observedIp) };
      }
      const n = Math.min(max || MAX_PEERS_ANSWER_RECORDS, MAX_PEERS_ANSWER_RECORDS);
      const sorted = candidates.list().sort((a, b) => (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
      return { status: Status.OK, payload: encodePeersAnswer([...mine, ...sorted.map((c) => c.record)].slice(0, n), proof, observedIp) };
    },
    async ask(link, opts) {
      let answer: Envelope;
      try {
        init.countOut?.(METHOD.mesh.peers);
        answer = await link.request(METHOD.mesh.peers, encodePeersRequest(shareCount), { signal: opts.signal });
      } catch {
        return null; // the link went: nothing to merge
      }
      if (answer.status !== Status.OK) return null;
      try {
        return decodePeersAnswer(answer.payload);
      } catch (err) {
        opts.onLie(`undecodable peers answer: ${errorLine(err)}`);
        return null;
      }
    },
  };
}
