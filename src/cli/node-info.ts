// What the commands that talk to one node (--server) print about it: how its key was trusted ("keySource":
// pinned by hand, known from an earlier run, or learned on first use now) and what it named in its bootstrap
// answer (its reward address for the kind and its identity id). A key learned now is also said on stderr.
import type { FindingsClient, NodeInfo } from "../client/index.ts";

/** The `node` object of --json outputs. */
export function nodeJson(n: NodeInfo): Record<string, string> {
  return {
    address: n.address,
    nodeId: n.nodeId,
    key: n.key,
    keySource: n.keySource,
    ...(n.recordFrom ? { recordFrom: n.recordFrom } : {}),
    stakeAddress: n.stakeAddress,
    stakeSource: n.stakeSource,
    identityId: n.identityId,
  };
}

/** One stderr line when the key was learned on first use (TOFU): the user should know, and may compare it. */
export function noteLearnedKey(client: FindingsClient, n: NodeInfo | undefined): void {
  if (n?.keySource !== "learned") return;
  const from = n.recordFrom && n.recordFrom !== n.address ? ` (record from ${n.recordFrom})` : "";
  const where = client.knownHosts.file ? `; remembered in ${client.knownHosts.file}` : "";
  process.stderr.write(`findings: learned the key of ${n.address} on first use${from}: ${n.key} (node id ${n.nodeId.slice(0, 16)}…)${where}\n`);
}

/** A short readable line: the node's id, reward address and identity. */
export function describeNode(n: NodeInfo): string {
  const stake = n.stakeAddress ? `${n.stakeAddress} (${n.stakeSource})` : "none";
  return `node ${n.nodeId.slice(0, 16)}… at ${n.address} · key ${n.keySource} · reward address ${stake} · identity ${n.identityId || "-"}`;
}
