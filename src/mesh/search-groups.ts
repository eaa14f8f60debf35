// Server groups: nodes advertising the same stake address for a kind, told apart by identity id (seed 001 §服务器群, DESIGN §8).
import { create } from "@bufbuild/protobuf";
import type { NodeRecord } from "../wire/index.ts";
import { ServerGroupSchema, type ServerGroup } from "../wire/index.ts";
import { recordNodeId, stakeFor } from "./record.ts";

export interface ServerGroupMember {
  nodeId: string;
  /** The member's own tag inside the group ("" when the node set none). */
  identityId: string;
}

export interface ServerGroupView {
  kind: string;
  stakeAddress: string;
  members: ServerGroupMember[];
}

/** Groups the records that serve `kind` by the stake address they give for it (their entry for the
 *  kind, else their "*" default). Records without a stake address for the kind belong to no group.
 *  Largest groups first (ties by address); members sorted by identity id, then node id; a node
 *  listed twice counts once. */
export function groupByStake(records: readonly NodeRecord[], kind: string): ServerGroupView[] {
  const groups = new Map<string, Map<string, ServerGroupMember>>();
  for (const rec of records) {
    if (!rec.kinds.includes(kind)) continue;
    const address = stakeFor(rec, kind);
    if (!address) continue;
    const nodeId = recordNodeId(rec);
    const members = groups.get(address) ?? new Map<string, ServerGroupMember>();
    members.set(nodeId, { nodeId, identityId: rec.identityId });
    groups.set(address, members);
  }
  return [...groups]
    .map(([stakeAddress, members]) => ({
      kind,
      stakeAddress,
      members: [...members.values()].sort((a, b) => a.identityId.localeCompare(b.identityId) || a.nodeId.localeCompare(b.nodeId)),
    }))
    .sort((a, b) => b.members.length - a.members.length || a.stakeAddress.localeCompare(b.stakeAddress));
}

/** The wire form (proto/mesh.proto ServerGroup: parallel node_ids / identity_ids). */
export function toProtoGroup(group: ServerGroupView): ServerGroup {
  return create(ServerGroupSchema, {
    kind: group.kind,
    stakeAddress: group.stakeAddress,
    nodeIds: group.members.map((m) => m.nodeId),
    identityIds: group.members.map((m) => m.identityId),
  });
}
