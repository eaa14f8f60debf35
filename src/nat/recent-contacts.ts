// The IPs this node's UDP socket talked to lately, for its own NAT probe: a router that admits, box-wide, every
// host its LAN sent UDP to (the "seen destinations" restricted cone) lets a NewHost probe from such a host in,
// which would fake a full cone (source-check.ts R4). The mesh's self-check, NewHost orders and app links all
// send from the shared socket, so the self-probe must count their peers as contacted.
import { BoundedMap } from "../contracts/index.ts";
import { normalizeIp } from "./source-check.ts";

/** How long a host we sent to stays "contacted" after the last packet or the link's close, in ms. NAT filter
 *  state for UDP rarely outlives this (Linux conntrack: 30 s unreplied, 120 s assured; home routers ≤ 5 min). */
export const RECENT_CONTACT_MS = 5 * 60_000;
/** Hosts remembered at once; the oldest go first. */
const MAX_RECENT_CONTACTS = 4096;

export class RecentContacts {
  /** Open links per IP, and whether we dialled one of them (a node, likelier a NewHost delegate). */
  private readonly open = new Map<string, { links: number; dialled: boolean }>();
  /** Last send or close per IP. */
  private readonly lastAt = new BoundedMap<string, { at: number; dialled: boolean }>(MAX_RECENT_CONTACTS);

  constructor(private readonly windowMs = RECENT_CONTACT_MS) {}

  linkUp(ip: string, dialled: boolean): void {
    const key = normalizeIp(ip);
    const o = this.open.get(key);
    if (o) {
      o.links++;
      o.dialled ||= dialled;
    } else this.open.set(key, { links: 1, dialled });
  }

  linkDown(ip: string, now: number): void {
    const key = normalizeIp(ip);
    const o = this.open.get(key);
    if (!o) return;
    this.touch(key, now, o.dialled);
    if (--o.links <= 0) this.open.delete(key);
  }

  /** A datagram we sent to `ip` outside any link. */
  touch(ip: string, now: number, dialled = false): void {
    const key = normalizeIp(ip);
    const prev = this.lastAt.get(key);
    this.lastAt.setNewest(key, { at: now, dialled: dialled || prev?.dialled === true });
  }

  /** The IPs contacted within the window: hosts we dialled first (other nodes, the likeliest delegates, so they
   *  lead a truncated avoid list), then the rest. */
  list(now: number): string[] {
    this.lastAt.dropOldestWhile((v) => now - v.at > this.windowMs);
    const dialled: string[] = [];
    const other: string[] = [];
    const seen = new Set<string>();
    const add = (ip: string, d: boolean) => {
      if (seen.has(ip)) return;
      seen.add(ip);
      (d ? dialled : other).push(ip);
    };
    for (const [ip, o] of this.open) add(ip, o.dialled);
    for (const [ip, v] of this.lastAt) add(ip, v.dialled);
    return [...dialled, ...other];
  }
}
