// Limits of what a node record carries (DESIGN §4), shared by the record codec (mesh) and the config
// (a config that passes validation always makes a valid record).

/** App kinds (and stakes) one node may advertise. */
export const MAX_RECORD_KINDS = 32;
/** Longest app kind, e.g. "blockchain:bitcoin", in characters. */
export const MAX_KIND_CHARS = 64;
/** Longest stake (reward) address; Bitcoin bech32m is ≤ 90, Ethereum 42, room for others. */
export const MAX_STAKE_ADDRESS_CHARS = 128;
/** Longest identity id (server group member tag, seed 001 §服务器群). */
export const MAX_IDENTITY_ID_CHARS = 64;

/** "family:name", e.g. "blockchain:bitcoin", "app:chat", "depots:x", "findings:x" (seed 001 §应用节点). */
const KIND_PATTERN = /^[a-z][a-z0-9-]{0,31}:[A-Za-z0-9._-]{1,63}$/;

export function isValidKind(kind: string): boolean {
  return kind.length >= 1 && kind.length <= MAX_KIND_CHARS && KIND_PATTERN.test(kind);
}
