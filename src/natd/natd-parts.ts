// The pure parts of the NAT'd-node service (natd-service.ts): the pool kind of a network, the pool node to join,
// and what the service needs of the mesh.
import type { NodeRecord } from "../wire/index.ts";
import { recordNodeId } from "../mesh/index.ts";
import type { MeshService } from "../mesh/index.ts";

/** Prefix of the Findings nodes' own app kind (seed 001 §应用节点: findings:xx). */
export const FINDINGS_KIND_PREFIX = "findings:";
/** A node-link.hello holds at most a shortlist of records (≈ 0.5 KiB each): 64 KiB, the envelope limit. */
export const NODE_LINK_HELLO_MAX_BYTES = 64 * 1024;

/** What the service uses of the mesh (MeshService satisfies it). */
export type NatdMesh = Pick<MeshService, "role" | "candidates" | "shareable" | "learn" | "isBanned">;

/** The app kind NAT'd nodes of `network` join: "findings:<network>". */
export function natdKind(network: string): string {
  return `${FINDINGS_KIND_PREFIX}${network}`;
}

/** The stakes table with the network's own kind added (a public node serves its NAT'd nodes); its address is
 *  the configured one for that kind, else the default ("*") one, as for any kind. */
export function withNetworkKind(stakes: Readonly<Record<string, string>>, network: string): Record<string, string> {
  const kind = natdKind(network);
  return Object.hasOwn(stakes, kind) ? { ...stakes } : { ...stakes, [kind]: "" };
}

/** A public node to join: a candidate (key-checked at its address) with a UDP port, not banned and not in
 *  `avoid` (every node of the network serves its findings kind). One at a configured peer's IP comes first, so
 *  the NAT'd nodes an operator points at one node meet in its pool; otherwise one at random. Null when none is
 *  known yet. */
export function pickPoolNode(
  candidates: readonly NodeRecord[],
  opts: { banned: (id: string) => boolean; preferIps?: readonly string[]; avoid?: ReadonlySet<string>; rand?: () => number },
): { ip: string; port: number; publicKey: Uint8Array; id: string } | null {
  const fit = candidates.filter((r) => r.addresses.some((a) => a.udpPort !== 0) && !opts.banned(recordNodeId(r)) && !opts.avoid?.has(recordNodeId(r)));
  if (!fit.length) return null;
  const preferred = fit.filter((r) => r.addresses.some((a) => opts.preferIps?.includes(a.ip)));
  const from = preferred.length ? preferred : fit;
  const r = from[Math.floor((opts.rand ?? Math.random)() * from.length)]!;
  const a = r.addresses.find((x) => x.udpPort !== 0)!;
  return { ip: a.ip, port: a.udpPort, publicKey: r.publicKey, id: recordNodeId(r) };
}
