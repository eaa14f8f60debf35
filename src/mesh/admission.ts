// Which mesh links are kept, and bans (DESIGN §5; seed 001 §组网池, §公钥广播与验证). Pure parts of the
// step (mesh-machine.ts): they change the state and return actions.
//
// A new link is kept when we serve, its peer is not banned, it is not the losing half of a crossed
// pair of dials, and the pool has a slot in its direction that the peer's network (/24, /48) may take.
// Whoever lies in a way it could have checked itself (a record with a bad signature or malformed, an
// undecodable answer, a self-check dial-back that never came) is banned for 4 h by node id and by the
// service IP we know it at; its candidate record and its link go. A record that fails its key check bans
// nobody (record-merge.ts).
import { formatAddress, unmapIp } from "../contracts/index.ts";
import { netGroupOf, netPrefixOf } from "../rpc/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import type { BanList } from "./ban-list.ts";
import { addressKeys, type CandidatePool } from "./candidate-pool.ts";
import type { CoreLink } from "./core-link.ts";
import { bump, logRebuild, type MeshAction, type MeshState } from "./mesh-machine.ts";
import { MESH_CLOSE } from "./mesh-service-constants.ts";
import type { Sharer } from "./record-merge.ts";
import { checkableAddresses, recordNodeId, verifyRecord } from "./record.ts";

export function admitLink(s: MeshState, link: CoreLink, now: number): MeshAction[] {
  const id = link.peerNodeId;
  if (!id) return [];
  if (s.role !== "service") return [{ type: "close", link, reason: MESH_CLOSE.notServing }];
  if (isPeerBanned(s.bans, link, now)) {
    bump(s.events, "linksRefusedBanned");
    return [{ type: "close", link, reason: MESH_CLOSE.banned }];
  }
  // --public on a wildcard host with nobody to ask: the address our peer reached is ours.
  const out: MeshAction[] = logRebuild(s.own.learnIp(link.local.ip, now));
  learnHelloRecord(s, link, now);
  const existing = s.live.get(id);
  if (existing && existing.isOpen) {
    // Both sides keep the link dialled by the smaller node id, so a crossing pair of dials ends
    // with exactly one link, the same one at both ends. A second link dialled the same way replaces
    // the first: the dialler lost or restarted it, and our end has not seen the close yet.
    const dialer = (l: CoreLink) => (l.direction === "out" ? s.myId : id);
    bump(s.events, "linksDuplicate");
    if (link.direction !== existing.direction && dialer(link) >= dialer(existing)) return [...out, { type: "close", link, reason: MESH_CLOSE.duplicate }];
    s.live.delete(id);
    s.meshPool.remove(id);
    out.push({ type: "close", link: existing, reason: MESH_CLOSE.duplicate });
  }
  // The peer's network is that of its service address (mesh links are pinned to it both ways).
  const added = s.meshPool.add({ id, direction: link.direction, openedAt: now, rttMs: link.rttMs ?? undefined, prefix: netPrefixOf(link.remote.ip), group: netGroupOf(link.remote.ip) });
  if (added === "crowded") {
    bump(s.events, "linksRefusedCrowded");
    return [...out, { type: "close", link, reason: MESH_CLOSE.crowded }];
  }
  if (added !== "added") {
    bump(s.events, "linksRefusedFull");
    return [...out, { type: "close", link, reason: MESH_CLOSE.full }];
  }
  s.live.set(id, link);
  s.dials.succeeded(id);
  s.candidates.seen(id, now);
  bump(s.events, link.direction === "out" ? "linksOut" : "linksIn");
  return [...out, { type: "watch", link }, { type: "share", link, refresh: false }];
}

/** An inbound mesh link's dialler proved its key at its service address (the bootstrap's dial-back
 *  reached it there), so the record its hello carried joins the candidate pool without a key check —
 *  whether or not the link is kept. A full node refuses many newcomers: this is how it hears of them,
 *  and its shares then carry them, instead of only the nodes that were there before it filled. */
function learnHelloRecord(s: MeshState, link: CoreLink, now: number): void {
  const rec = link.helloRecord;
  if (!rec || link.direction !== "in" || link.trust !== "mesh" || recordNodeId(rec) !== link.peerNodeId) return;
  if (!verifyRecord(rec, now, { maxAgeMs: s.settings.recordMaxAgeMs }).ok) return;
  const at = `${unmapIp(link.remote.ip)}/${link.remote.port}`;
  const proven = checkableAddresses(rec).filter((a) => `${unmapIp(a.ip)}/${a.tcpPort}` === at);
  if (!proven.length) return;
  const added = s.candidates.add(rec, now, { rttMs: link.rttMs ?? undefined, proven });
  if (added.outcome === "added") bump(s.events, "candidatesFromHello");
}

/** Bans a sharer by node id and by the service IP we know it at, drops its record and link. */
export function punish(s: MeshState, sharer: Sharer, why: string, now: number): MeshAction[] {
  let fresh = false;
  for (const target of [sharer.id, sharer.ip]) {
    if (!target || s.bans.isBanned(target, now)) continue;
    s.bans.ban(target, { reason: why, now });
    fresh = true;
  }
  if (!fresh) return [];
  bump(s.events, "bansIssued");
  const out: MeshAction[] = [{ type: "log", level: "warn", msg: "peer banned", fields: { peer: sharer.label, reason: why } }];
  if (sharer.id) {
    s.candidates.remove(sharer.id);
    const link = s.live.get(sharer.id);
    if (link) out.push({ type: "close", link, reason: MESH_CLOSE.banned });
  }
  for (const c of s.candidates.list()) {
    if (c.record.addresses.some((a) => a.ip === sharer.ip)) s.candidates.remove(c.id);
  }
  return out;
}

/** A link's peer is banned by node id, or by the service address of a mesh link, or by the socket's
 *  source for first-contact links. */
export function isPeerBanned(bans: BanList, link: CoreLink, now: number): boolean {
  if (link.peerNodeId && bans.isBanned(link.peerNodeId, now)) return true;
  return bans.isBanned(link.trust === "mesh" ? link.remote.ip : link.socketRemote.ip, now);
}

/** Who a link's peer is, for punish(). */
export function sharerOf(link: CoreLink): Sharer {
  return { label: `${link.peerNodeId?.slice(0, 16) ?? "?"}@${formatAddress(link.remote.ip, link.remote.port)}`, id: link.peerNodeId, ip: link.remote.ip };
}

/** A forwarded record that claims an address a key-checked candidate holds under another key. */
export function contradicts(candidates: CandidatePool, rec: NodeRecord): boolean {
  const id = recordNodeId(rec);
  return addressKeys(rec).some((k) => {
    const holder = candidates.holderOf(k);
    return holder !== undefined && holder !== id;
  });
}
