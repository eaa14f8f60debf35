// The stake answer an app gets when it joins a kind's pool (seed 000 §经济激励, seed 001 §服务器群, DESIGN §7, §9).
//
// Decisions:
// - Kinds served = the explicit keys of the [stakes] config table, without "*". "*" only supplies the
//   default address; it does not mean "serve every kind": every served kind gets its own pool of up to
//   punch_xpool members, so "any kind" would let anyone grow the node's memory by inventing kinds, and
//   the node record advertises its kinds explicitly so `findings find KIND` can work.
// - The address follows what the node advertises in its record (record.ts buildRecord drops empty
//   addresses; stakeFor falls back to "*"): the kind's own non-empty address ("kind"), else the "*"
//   address ("default"), else "" ("none"). For a blockchain kind the seed wants that chain's address;
//   when only "*" is configured the app still gets "*" (marked "default", so it can tell the address
//   may belong to another chain) — the same answer a mesh search shows, never two different ones.
// - Identity id = config user_id, or the node id when user_id is empty (defaults.toml).

/** Prefix of blockchain kinds (seed 001 §应用节点: depots:xx | blockchain:xx | app:xx | findings:xx). */
export const BLOCKCHAIN_KIND_PREFIX = "blockchain:";
/** Config key of the default address. */
export const DEFAULT_STAKE_KEY = "*";

export type StakeSource = "kind" | "default" | "none";

export interface StakeConfig {
  /** Config [stakes]: kind → address, "*" = default address. */
  stakes: Readonly<Record<string, string>>;
  /** Config user_id; "" = use nodeId. */
  userId: string;
  /** This node's id (hex). */
  nodeId: string;
}

export interface StakeAnswer {
  kind: string;
  /** "" when the node has no address for this kind. */
  stakeAddress: string;
  source: StakeSource;
  identityId: string;
  /** The kind is a blockchain and the address is not one configured for it (it is "*" or none). */
  foreignChain: boolean;
}

export type StakeResult = { ok: true; answer: StakeAnswer } | { ok: false; reason: "kind-not-served"; message: string };

/** Kinds this node serves: the [stakes] keys except "*", sorted. */
export function servedKinds(stakes: Readonly<Record<string, string>>): string[] {
  return Object.keys(stakes)
    .filter((k) => k !== DEFAULT_STAKE_KEY)
    .sort();
}

export function isBlockchainKind(kind: string): boolean {
  return kind.startsWith(BLOCKCHAIN_KIND_PREFIX) && kind.length > BLOCKCHAIN_KIND_PREFIX.length;
}

export function identityIdOf(config: Pick<StakeConfig, "userId" | "nodeId">): string {
  return config.userId !== "" ? config.userId : config.nodeId;
}

/** The answer to an app joining `kind`; a refusal naming the served kinds when the node does not serve it. */
export function stakeAnswer(kind: string, config: StakeConfig): StakeResult {
  const { stakes } = config;
  if (kind === DEFAULT_STAKE_KEY || !Object.hasOwn(stakes, kind)) {
    const served = servedKinds(stakes);
    return {
      ok: false,
      reason: "kind-not-served",
      message: `kind ${JSON.stringify(kind)} is not served by this node (served: ${served.length ? served.join(", ") : "none"})`,
    };
  }
  const own = stakes[kind] ?? "";
  const fallback = Object.hasOwn(stakes, DEFAULT_STAKE_KEY) ? (stakes[DEFAULT_STAKE_KEY] ?? "") : "";
  const [stakeAddress, source]: [string, StakeSource] = own !== "" ? [own, "kind"] : fallback !== "" ? [fallback, "default"] : ["", "none"];
  return {
    ok: true,
    answer: {
      kind,
      stakeAddress,
      source,
      identityId: identityIdOf(config),
      foreignChain: isBlockchainKind(kind) && source !== "kind",
    },
  };
}

/** What the node names in every app bootstrap answer: the address for `kind` as `stakeAnswer` picks it, but
 *  never refused — an unserved or empty kind gets the general ("*") address, marked "default". */
export function bootstrapStake(kind: string, config: StakeConfig): { stakeAddress: string; stakeSource: StakeSource; identityId: string } {
  const served = kind !== "" ? stakeAnswer(kind, config) : null;
  if (served?.ok) return { stakeAddress: served.answer.stakeAddress, stakeSource: served.answer.source, identityId: served.answer.identityId };
  const general = Object.hasOwn(config.stakes, DEFAULT_STAKE_KEY) ? (config.stakes[DEFAULT_STAKE_KEY] ?? "") : "";
  return { stakeAddress: general, stakeSource: general !== "" ? "default" : "none", identityId: identityIdOf(config) };
}
