// The IPs this node's UDP socket talked to lately, for its own NAT probe: a router that admits, box-wide, every
// host its LAN sent UDP to (the "seen destinations" restricted cone) lets a NewHost probe from such a host in,
// which would fake a full cone (source-check.ts R4). The mesh's self-check, NewHost orders and app links all
// send from the shared socket, so the self-probe must count their peers as contacted.
import { BoundedMap } from "../contracts/index.ts";
import type { LinkEvent, LinkListener } from "../transport/index.ts";
import { normalizeIp } from "./source-check.ts";

/** How long a host we sent to stays "contacted" after the last packet or the link's close, in ms. NAT filter
 *  state for UDP rarely outlives this (Linux conntrack: 30 s unreplied, 120 s assured; home routers ≤ 5 min). */
export const RECENT_CONTACT_MS = 5 * 60_000;
/** Hosts remembered at once per kind (dialled / other); the oldest go first. */
const MAX_RECENT_CONTACTS = 4096;

export class RecentContacts {
  /** Open links per IP, and whether we dialled one of them (a node, likelier a NewHost delegate). */
  private readonly open = new Map<string, { links: number; dialled: boolean }>();
  /** Last send or close per IP, hosts we dialled apart: strangers that make us send to many IPs (probe
   *  clients) cannot push the nodes we dialled out of memory. */
  private readonly dialledAt = new BoundedMap<string, number>(MAX_RECENT_CONTACTS);
  private readonly otherAt = new BoundedMap<string, number>(MAX_RECENT_CONTACTS);

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
    if (dialled || this.dialledAt.has(key)) this.dialledAt.setNewest(key, now);
    else this.otherAt.setNewest(key, now);
  }

  /** The IPs contacted within the window: hosts we dialled first (other nodes, the likeliest delegates, so they
   *  lead a truncated avoid list), then the rest. */
  list(now: number): string[] {
    const expired = (at: number) => now - at > this.windowMs;
    this.dialledAt.dropOldestWhile(expired);
    this.otherAt.dropOldestWhile(expired);
    const out = new Set<string>();
    for (const [ip, o] of this.open) if (o.dialled) out.add(ip);
    for (const ip of this.dialledAt.keys()) out.add(ip);
    for (const [ip, o] of this.open) if (!o.dialled) out.add(ip);
    for (const ip of this.otherAt.keys()) out.add(ip);
    return [...out];
  }
}

/** Keeps `contacts` up to date with the links of a UDP endpoint; returns the unsubscribe. */
export function trackLinks(udp: { on(event: LinkEvent, fn: LinkListener): () => void }, contacts: RecentContacts, now: () => number): () => void {
  const offs = [
    udp.on("connect", (link) => contacts.linkUp(link.remote.ip, link.direction === "out")),
    udp.on("migrate", (link, previous) => {
      if (!previous) return;
      contacts.linkDown(previous.ip, now());
      contacts.linkUp(link.remote.ip, link.direction === "out");
    }),
    udp.on("close", (link) => contacts.linkDown(link.remote.ip, now())),
  ];
  return () => {
    for (const off of offs) off();
  };
}
