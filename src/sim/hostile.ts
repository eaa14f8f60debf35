// Hostile node behaviours, installed on a node's router (src/rpc) over the real mesh routes: the attacks
// a trust review found against the mesh (DESIGN §3, §5, §8). Each takes what any node has — its router,
// key, own record and mesh dialer — so it runs on a simulated node (memory-net) and on a real one alike.
//
// - relayForgedRecords: mesh.peers answers carry, beside genuine records, copies of honest records
//   re-keyed and re-signed by a fresh key (a forged record: valid signature, wrong owner).
// - lieInFind: mesh.find answers carry only the coalition's records (which claim every kind) and forged
//   copies of honest servers; honest servers are left out.
// - refuseKeyChecksSelectively: mesh.key-check is answered for the first checker (or those `passes`
//   picks) and refused as "cannot open" for everyone else, so an honest node that relays our record
//   looks like a liar to the others.
// - crowdVictim: dial one victim again and again to take its incoming slots, and answer its mesh.peers
//   with coalition records only, to fill its candidate pool and so its outgoing links (an eclipse).
import { clone, fromBinary } from "@bufbuild/protobuf";
import type { HostPort } from "../contracts/index.ts";
import type { Clock } from "../contracts/index.ts";
import { generateNodeKey, type NodeKey } from "../identity/index.ts";
import { answerKeyCheck, encodeFindAnswer, encodePeersAnswer, parseFindRequest, recordNodeId, signRecord } from "../mesh/index.ts";
import { ANY_TRUST, METHOD, type Route, type Router } from "../rpc/index.ts";
import { KeyChallengeSchema, NodeRecordSchema, Status, type NodeRecord } from "../wire/index.ts";

/** What a behaviour needs of the node it runs on. */
export interface HostileHost {
  router: Router;
  nodeKey: NodeKey;
  /** The node's own signed record (undefined until it serves). */
  ownRecord(): NodeRecord | undefined;
  links: { dialMesh(addr: HostPort, key: Uint8Array): Promise<{ isOpen: boolean; closed: Promise<unknown> }> };
}

/** The hostile nodes acting together: their live records, shared between them. */
export interface Coalition {
  records(): NodeRecord[];
  /** Honest records the coalition has seen (to forge). */
  honest(): NodeRecord[];
}

/** A policy loose enough that the attacker's own router never gets in its way. */
function route(handler: Route["handler"], transports: Route["transports"] = ["wss"]): Route {
  return { transports, trust: ANY_TRUST, rate: [{ ratePerS: 1e6, burst: 1e6 }], maxInFlight: 1e6, maxPayloadBytes: 64 * 1024, handler } as Route;
}

const forgeries = new Map<string, NodeRecord>();

/** `genuine` re-keyed and signed by a fresh key: its signature checks, its key check fails. One
 *  forgery per record (seq), kept. */
export function forgeRecord(genuine: NodeRecord): NodeRecord {
  const k = `${recordNodeId(genuine)}:${genuine.seq}`;
  let f = forgeries.get(k);
  if (!f) {
    const fake = generateNodeKey();
    const copy = clone(NodeRecordSchema, genuine);
    copy.publicKey = fake.publicKey;
    f = signRecord(copy, fake.privateKey);
    if (forgeries.size > 50_000) forgeries.clear();
    forgeries.set(k, f);
  }
  return f;
}

function pick<T>(xs: readonly T[], n: number, rand: () => number): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a.slice(0, n);
}

/** mesh.peers answers: our record, `forged` forged copies of honest records, coalition records. */
export function relayForgedRecords(h: HostileHost, c: Coalition, opts: { forged?: number; rand?: () => number } = {}): () => void {
  const rand = opts.rand ?? Math.random;
  return h.router.add(
    METHOD.mesh.peers,
    route(() => {
      const own = h.ownRecord();
      const forged = pick(c.honest(), opts.forged ?? 2, rand).map(forgeRecord);
      return encodePeersAnswer([...(own ? [own] : []), ...forged, ...pick(c.records(), 7, rand)]);
    }),
    { replace: true },
  );
}

/** mesh.find answers: coalition records (they claim every kind) and forged honest servers of the kind. */
export function lieInFind(h: HostileHost, c: Coalition, opts: { rand?: () => number } = {}): () => void {
  const rand = opts.rand ?? Math.random;
  return h.router.add(
    METHOD.mesh.find,
    route((payload) => {
      const req = parseFindRequest(payload);
      if (!req.ok) return { status: Status.BAD_REQUEST, error: req.detail };
      const kind = req.request.kind;
      const ours = c.records().filter((r) => r.kinds.includes(kind));
      const forged = c.honest().filter((r) => r.kinds.includes(kind)).slice(0, 3).map(forgeRecord);
      return encodeFindAnswer([...pick(ours, 20, rand), ...forged], []);
    }),
    { replace: true },
  );
}

/** mesh.key-check answered only for checkers `passes` accepts (default: the first one to ask). */
export function refuseKeyChecksSelectively(h: HostileHost, passes?: (checkerKey: Uint8Array) => boolean): () => void {
  let friend: string | null = null;
  const ok =
    passes ??
    ((key: Uint8Array) => {
      const hex = Buffer.from(key).toString("hex");
      friend ??= hex;
      return friend === hex;
    });
  return h.router.add(
    METHOD.mesh.keyCheck,
    route((payload) => {
      let checker: Uint8Array;
      try {
        checker = fromBinary(KeyChallengeSchema, payload).publicKey;
      } catch {
        return { status: Status.BAD_REQUEST, error: "undecodable challenge" };
      }
      if (!ok(checker)) return { status: Status.UNAUTHENTICATED, error: "cannot-open: authentication failed" };
      return answerKeyCheck(h.nodeKey, payload, h.ownRecord());
    }),
    { replace: true },
  );
}

/** Keeps a mesh link to `victim` (redialled every `everyMs` while down) and answers every mesh.peers
 *  with coalition records only. */
export function crowdVictim(h: HostileHost, c: Coalition, victim: { address: HostPort; publicKey: Uint8Array }, clock: Clock, opts: { everyMs?: number; rand?: () => number } = {}): () => void {
  const rand = opts.rand ?? Math.random;
  let link: { isOpen: boolean } | null = null;
  let dialling = false;
  let stopped = false;
  const off = h.router.add(
    METHOD.mesh.peers,
    route(() => encodePeersAnswer(pick(c.records(), 10, rand))),
    { replace: true },
  );
  const timer = clock.setInterval(() => {
    if (stopped || dialling || link?.isOpen || !h.ownRecord()) return;
    dialling = true;
    h.links.dialMesh(victim.address, victim.publicKey).then(
      (l) => {
        link = l;
        dialling = false;
      },
      () => (dialling = false),
    );
  }, opts.everyMs ?? 5_000);
  return () => {
    stopped = true;
    clock.clearInterval(timer);
    off();
  };
}
