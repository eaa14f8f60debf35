// The simulated network: real mesh services (src/mesh createMeshService, its records, key checks,
// bans and search) over an in-memory network (memory-net) shaped per pair of IPs (shape.ts), on a
// virtual clock (sim-clock.ts). Honest nodes come from many /16s, hostile ones from a few /24s and run
// the behaviours of hostile.ts. Churn replaces honest nodes; each node has a home folder for its
// peer cache.
import { mkdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DEFAULTS } from "../config/index.ts";
import { enableCryptoMemo, nodeKeyFromPrivate, type NodeKey } from "../identity/index.ts";
import { createMemoryNet, createMeshService, type MemoryNet, type MemoryNode, type MeshService, type MeshServiceInit } from "../mesh/index.ts";
import { silentLogger } from "../contracts/index.ts";
import type { NodeRecord } from "../wire/index.ts";
import { crowdVictim, lieInFind, refuseKeyChecksSelectively, relayForgedRecords, type Coalition } from "./hostile.ts";
import { createShape, seeded, type ShapeOptions } from "./shape.ts";
import { SimClock } from "./sim-clock.ts";

export const PORT = 7788;
const SPECIAL_FIRST_OCTETS = new Set([100, 127, 169, 172, 192, 198]);

export type Attack = "forge" | "find" | "keycheck" | "crowd";

export interface SimNode {
  readonly n: number;
  readonly key: NodeKey;
  readonly net: MemoryNode;
  readonly mesh: MeshService;
  readonly ip: string;
  readonly hostile: Attack | null;
  readonly seed: boolean;
  /** The kind it serves (honest nodes). */
  readonly kind: string | null;
  readonly bornAt: number;
  alive: boolean;
  stopHostile?: () => void;
}

export interface NetworkOptions {
  seed: number;
  /** Kinds honest nodes serve (one each, uniformly). */
  kinds: number;
  /** How many /24s the hostile nodes come from. */
  sybilPrefixes: number;
  /** Each hostile /24 in a /16 of its own (66.6.k.x otherwise: all in one /16). */
  sybilSpread?: boolean;
  /** Attacks hostile nodes run, one per node, round robin. @default all four */
  attacks?: readonly Attack[];
  /** Config values (defaults.toml unless given). */
  mesh?: Partial<MeshServiceInit>;
  shape?: Partial<ShapeOptions>;
}

/** Mesh config from defaults.toml (src/config), as the node passes it. */
export function meshDefaults(): Omit<MeshServiceInit, "host" | "peers"> {
  return {
    public: false,
    clientOnly: false,
    shortlist: DEFAULTS.shortlist,
    meshOut: DEFAULTS.mesh_out,
    meshIn: DEFAULTS.mesh_in,
    switchIntervalMs: DEFAULTS.mesh_switch_s * 1000,
    peersHelp: DEFAULTS.peers_help,
    shareCount: DEFAULTS.mesh_share,
    peerCacheMaxAgeMs: DEFAULTS.peer_cache_days * 86_400_000,
    stakes: {},
  };
}

export const kindName = (k: number) => `app:sim-${k}`;

export class SimNetwork {
  readonly clock = new SimClock(1_800_000_000_000);
  readonly startedAt = this.clock.now();
  readonly shape;
  readonly net: MemoryNet;
  readonly nodes: SimNode[] = [];
  readonly byId = new Map<string, SimNode>();
  readonly byIp = new Map<string, SimNode>();
  /** Every node that ever ran, by node id and by IP: whether it was hostile (bans of nodes gone). */
  readonly ever = new Map<string, { id: string; hostile: boolean }>();
  /** Bytes sent and received, by IP. */
  readonly bytes = new Map<string, number>();
  readonly rand: () => number;
  readonly seeds: SimNode[] = [];
  victim: SimNode | null = null;
  private readonly dir = join(existsShm() ? "/dev/shm" : tmpdir(), `findings-sim-${process.pid}-${Date.now()}`);
  private count = 0;
  private hostileCount = 0;
  private readonly usedIps = new Set<string>();
  private readonly coalition: Coalition;

  constructor(readonly o: NetworkOptions) {
    enableCryptoMemo();
    this.rand = seeded(o.seed);
    this.shape = createShape({ seed: o.seed, ...o.shape });
    const counted = {
      rttMs: this.shape.rttMs,
      delayMs: (a: string, b: string, n: number) => {
        this.bytes.set(a, (this.bytes.get(a) ?? 0) + n);
        this.bytes.set(b, (this.bytes.get(b) ?? 0) + n);
        return this.shape.delayMs(a, b, n);
      },
    };
    this.net = createMemoryNet({ clock: this.clock, shape: counted });
    mkdirSync(this.dir, { recursive: true });
    const live = (hostile: boolean) => this.nodes.filter((x) => x.alive && (x.hostile !== null) === hostile);
    this.coalition = {
      records: () => live(true).map((x) => x.mesh.record()).filter((r): r is NodeRecord => !!r),
      honest: () => {
        const h = live(false);
        return Array.from({ length: Math.min(8, h.length) }, () => h[Math.floor(this.rand() * h.length)]!.mesh.record()).filter((r): r is NodeRecord => !!r);
      },
    };
  }

  seconds(): number {
    return (this.clock.now() - this.startedAt) / 1000;
  }

  private honestIp(): string {
    for (;;) {
      const r = this.rand;
      // First octets 20–199 without the ones that hold special-purpose ranges (RFC 6890): 100.64/10,
      // 127/8, 169.254/16, 172.16/12, 192.168/16 and 192.0.2/24, 198.18/15 and 198.51.100/24.
      const first = 20 + Math.floor(r() * 180);
      if (SPECIAL_FIRST_OCTETS.has(first)) continue;
      const ip = `${first}.${Math.floor(r() * 256)}.${Math.floor(r() * 256)}.${1 + Math.floor(r() * 253)}`;
      if (!this.usedIps.has(ip)) return ip;
    }
  }

  private hostileIp(i: number): string {
    const k = i % this.o.sybilPrefixes;
    const host = 1 + Math.floor(i / this.o.sybilPrefixes);
    if (host > 254) throw new Error(`${i + 1} hostile nodes do not fit in ${this.o.sybilPrefixes} /24s`);
    if (this.o.sybilSpread) return `66.${6 + (k % 250)}.${Math.floor(k / 250)}.${host}`;
    return `66.${6 + Math.floor(k / 256)}.${k % 256}.${host}`;
  }

  /** Adds and starts a node: a seed (--public, no peers), an honest node, or a hostile one. */
  async add(role: "seed" | "honest" | "hostile"): Promise<SimNode> {
    const n = this.count++;
    const hostileIndex = role === "hostile" ? this.hostileCount++ : -1;
    const ip = role === "hostile" ? this.hostileIp(hostileIndex) : this.honestIp();
    this.usedIps.add(ip);
    const key = nodeKeyFromPrivate(Uint8Array.from({ length: 32 }, () => Math.floor(this.rand() * 256)));
    let mesh: MeshService | undefined;
    const net = this.net.node({ ip, port: PORT, publicKey: key.publicKey, record: () => mesh?.record() });
    const home = join(this.dir, `n${n}`);
    mkdirSync(home, { recursive: true });
    const attacks = this.o.attacks ?? ["forge", "find", "keycheck", "crowd"];
    const hostile = role === "hostile" ? attacks[hostileIndex % attacks.length]! : null;
    const kind = role === "hostile" ? null : kindName(Math.floor(this.rand() * this.o.kinds));
    // Hostile nodes claim up to 32 kinds (the record's limit) to draw searches.
    const stakes: Record<string, string> = {};
    if (kind) stakes[kind] = `stake-${n}`;
    else for (let k = 0; k < Math.min(this.o.kinds, 32); k++) stakes[kindName((hostileIndex + k) % this.o.kinds)] = `sybil-${n}`;
    mesh = createMeshService(
      { links: net.links, udp: net.udp, tcpPort: () => PORT, nodeKey: key, cert: { spki: "ab".repeat(32) }, log: silentLogger, home, clock: this.clock, rand: seeded(this.o.seed * 7919 + n) },
      { ...meshDefaults(), ...this.o.mesh, host: ip, public: role === "seed", peers: this.seeds.map((s) => `${s.ip}:${PORT}`), stakes },
    );
    const node: SimNode = { n, key, net, mesh, ip, hostile, seed: role === "seed", kind, bornAt: this.clock.now(), alive: true };
    this.nodes.push(node);
    this.byId.set(key.nodeId, node);
    this.byIp.set(ip, node);
    this.ever.set(key.nodeId, { id: key.nodeId, hostile: role === "hostile" });
    this.ever.set(ip, { id: key.nodeId, hostile: role === "hostile" });
    if (role === "seed") this.seeds.push(node);
    if (role === "honest" && !this.victim) this.victim = node;
    await mesh.start();
    if (hostile) node.stopHostile = this.arm(node, hostile);
    return node;
  }

  private arm(node: SimNode, attack: Attack): () => void {
    const host = { router: node.net.router, nodeKey: node.key, ownRecord: () => node.mesh.record(), links: node.net.links };
    const rand = seeded(this.o.seed * 31 + node.n);
    switch (attack) {
      case "forge":
        return relayForgedRecords(host, this.coalition, { rand });
      case "find":
        return lieInFind(host, this.coalition, { rand });
      case "keycheck":
        return refuseKeyChecksSelectively(host);
      case "crowd": {
        const v = this.victim!;
        return crowdVictim(host, this.coalition, { address: v.net.address, publicKey: v.key.publicKey }, this.clock, { rand });
      }
    }
  }

  /** Stops a node and takes it off the network. */
  async kill(node: SimNode): Promise<void> {
    if (!node.alive) return;
    node.alive = false;
    node.stopHostile?.();
    await node.mesh.stop();
    node.net.stop();
    rmSync(join(this.dir, `n${node.n}`), { recursive: true, force: true });
    // Gone nodes are dropped (their state is most of the memory); `ever` remembers who they were.
    this.byId.delete(node.key.nodeId);
    this.byIp.delete(node.ip);
    const i = this.nodes.indexOf(node);
    if (i >= 0) this.nodes.splice(i, 1);
  }

  live(): SimNode[] {
    return this.nodes.filter((x) => x.alive);
  }

  async close(): Promise<void> {
    for (const x of [...this.nodes]) if (x.alive) await this.kill(x);
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function existsShm(): boolean {
  try {
    mkdirSync("/dev/shm", { recursive: true });
    return process.platform === "linux";
  } catch {
    return false;
  }
}
