// A stranger's end of the node protocol, for the adversary tests: a first-contact WSS link from a chosen
// source address (any host of 127/8 on loopback, so a test can play one /24 or many), over which the test
// sends whatever requests it likes, byte for byte.
import { formatAddress, type HostPort } from "../../src/contracts/index.ts";
import { createMeshLink, MESH_PATH, type MeshLink } from "../../src/mesh/index.ts";
import { dialWss } from "../../src/transport/index.ts";

/** A first-contact (untrusted, unpinned) link to `to` whose TCP source is `from`. */
export async function hostileLink(from: string, to: HostPort, opts: { timeoutMs?: number } = {}): Promise<MeshLink> {
  const { conn, peerSpki } = await dialWss(to, { path: MESH_PATH, pinSpki: null, localAddress: from, timeoutMs: opts.timeoutMs ?? 5_000 });
  return createMeshLink(conn, { direction: "out", trust: "untrusted", remote: to, peerKey: null, peerSpki });
}

/** "ip:port" for messages. */
export const show = (a: HostPort) => formatAddress(a);
