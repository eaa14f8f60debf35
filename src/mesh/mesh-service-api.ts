// The mesh service's surface: what it is built from (components, config values) and what the node
// and the admin endpoint use of it.
import type { NodeKey } from "../identity/index.ts";
import type { Logger } from "../contracts/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import type { Clock } from "../contracts/index.ts";
import type { CoreLink, MeshNet, MeshUdp } from "./core-link.ts";
import type { MeshRole, MeshStateInit } from "./mesh-machine.ts";
import type { SearchResult } from "./mesh-search.ts";
import type { MeshServiceStatus, MeshSummary } from "./mesh-status.ts";

export interface MeshServiceComponents {
  /** The mesh link service (link-service.ts), or an in-memory network (memory-net.ts). */
  links: MeshNet;
  /** QUIC handlers for apps (`findings peers/find`) and the self-check's dials. */
  udp: MeshUdp;
  /** The TLS endpoint's bound port (the mesh port in our record). */
  tcpPort: () => number;
  nodeKey: NodeKey;
  cert: { spki: string };
  log: Logger;
  home: string;
  /** The node's own NAT class from its self-probe (DESIGN §6), for the record; absent = Public. */
  ownNat?: { current(): string | null; onChange(cb: () => void): () => void };
  /** @default systemClock */
  clock?: Clock;
  /** @default Math.random */
  rand?: () => number;
}

/** Values from the config (src/config/defaults.toml). */
export interface MeshServiceInit {
  /** Bound host (`host`); a wildcard means the advertised IP is learned from peers. */
  host: string;
  /** IPs to advertise, one per family (`advertise`); empty = the host, or what the self-check saw. */
  advertise?: readonly string[];
  /** Bootstrap peers, "ip:port[#key]" (`peers`, --peer). */
  peers: readonly string[];
  /** Serve without the self-check (--public). */
  public: boolean;
  /** Never serve (--client-only). */
  clientOnly: boolean;
  /** Candidate pool size (`shortlist`). */
  shortlist: number;
  meshOut: number;
  meshIn: number;
  /** Diversity (`mesh_per_prefix`, `candidates_per_prefix`). @default defaults.toml */
  meshPerPrefix?: number;
  candidatesPerPrefix?: number;
  /** `mesh_switch_s` × 1000. */
  switchIntervalMs: number;
  /** Helpers asked at once (`peers_help`). */
  peersHelp: number;
  /** Candidates shared on each new link (`mesh_share`). */
  shareCount: number;
  /** `peer_cache_days` in ms. */
  peerCacheMaxAgeMs: number;
  /** `record_max_age_s` in ms. @default the embedded default */
  recordMaxAgeMs?: number;
  /** `record_resign_s` in ms. @default the embedded default */
  recordResignMs?: number;
  /** Kind → reward address ([stakes]); every key but "*" is a kind we serve. */
  stakes: Readonly<Record<string, string>>;
  /** Identity id in our record (`user_id`, else the node id). */
  identityId?: string;
  /** Overrides of the timing edges of mesh-service-constants.ts (tests, the simulator). */
  timing?: MeshStateInit["timing"];
}

export interface MeshService {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** Our signed record while we serve. */
  record(): NodeRecord | undefined;
  readonly role: MeshRole;
  status(): MeshServiceStatus;
  /** Counts and link ends of status(), cheap enough to read from every node often (the simulator). */
  summary(): MeshSummary;
  /** Each candidate's node id and kinds (the simulator's view of who could answer a search). */
  candidateKinds(): { id: string; kinds: readonly string[] }[];
  /** Flat numbers for /metrics. */
  counters(): Record<string, number>;
  /** A search started at this node (DESIGN §8). */
  find(kind: string): Promise<SearchResult>;
  /** The live mesh links (for other services' searches through the mesh, e.g. the share registry's). */
  meshLinks(): CoreLink[];
  /** A mesh peer answered another service's search with what it could have checked itself: banned as a liar. */
  punishLiar(link: CoreLink, why: string): void;
  /** Resolves when the start-up (self-check, help, first merge) is done. */
  readonly ready: Promise<void>;
  /** Records of the candidate pool (public nodes whose key was checked at their address), narrowed to the
   *  addresses the check proved: copies for dialling here, whose signature no longer verifies (never shared). */
  candidates(): NodeRecord[];
  /** Records to give a peer that is not a mesh link (a NAT'd node): our own while we serve, then up to
   *  `max` random candidates. */
  shareable(max: number): NodeRecord[];
  /** Records a peer that is not a mesh link shared (a NAT'd node on a punched link or in our app pool): the
   *  same checks as a mesh share (signature, age, key check at the address; a liar is banned). Resolves with
   *  how many candidates were added. */
  learn(records: readonly NodeRecord[], sharer: { label: string; id?: string | null; ip?: string | null }): Promise<number>;
  /** A node id or IP is banned now. */
  isBanned(idOrIp: string): boolean;
}
