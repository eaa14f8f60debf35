// Many mesh services in one process: real records, signatures and key checks over in-memory links
// (src/mesh/memory-net.ts) on a fake clock. Shared by the mesh core tests.
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { nodeKeyFromPrivate, type NodeKey } from "../../src/identity/node-key.ts";
import { createMemoryNet, type MemoryNet, type MemoryNode } from "../../src/mesh/memory-net.ts";
import { createMeshService, type MeshService, type MeshServiceInit } from "../../src/mesh/mesh-service.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { tempDir } from "../helpers.ts";
import { seeded } from "../seeded.ts";
import { FakeClock } from "../../src/contracts/fake-clock.ts";

export const PORT = 7788;
export const ipOf = (i: number) => `10.0.0.${i + 1}`;

export interface SimNode {
  i: number;
  key: NodeKey;
  net: MemoryNode;
  mesh: MeshService;
}

/** The config values a node gets unless the test says otherwise (src/config/defaults.toml). */
export const DEFAULTS: Omit<MeshServiceInit, "host" | "peers"> = {
  public: false,
  clientOnly: false,
  shortlist: 100,
  meshOut: 3,
  meshIn: 6,
  switchIntervalMs: 300_000,
  peersHelp: 10,
  shareCount: 10,
  peerCacheMaxAgeMs: 7 * 86_400_000,
  stakes: {},
  // Every memory node is in 10.0.0.0/24: the diversity limits would cap the whole network.
  meshPerPrefix: 64,
  candidatesPerPrefix: 10_000,
};

export class Sim {
  readonly clock = new FakeClock(1_800_000_000_000);
  readonly net: MemoryNet = createMemoryNet({ clock: this.clock });
  readonly nodes: SimNode[] = [];
  private readonly dir = tempDir("findings-memory-mesh-");
  private readonly rand: () => number;

  constructor(seed = 1) {
    this.rand = seeded(seed);
  }

  /** Adds and starts node `i` at ipOf(i). `started` runs right after start(), before any link or
   *  request of the new node is handled (e.g. to replace a handler). */
  async add(i: number, init: Partial<MeshServiceInit> = {}, started?: (node: SimNode) => void): Promise<SimNode> {
    // Keys from the seed too, so node ids (which decide ties between crossing dials) repeat.
    const key = nodeKeyFromPrivate(Uint8Array.from({ length: 32 }, () => Math.floor(this.rand() * 256)));
    const net = this.net.node({ ip: ipOf(i), port: PORT, publicKey: key.publicKey });
    const home = join(this.dir.path, `n${i}-${this.nodes.length}`);
    mkdirSync(home, { recursive: true });
    const mesh = createMeshService(
      { links: net.links, udp: net.udp, tcpPort: () => PORT, nodeKey: key, cert: { spki: "ab".repeat(32) }, log: silentLogger, home, clock: this.clock, rand: this.rand },
      { ...DEFAULTS, host: ipOf(i), peers: [], ...init },
    );
    const node = { i, key, net, mesh };
    this.nodes.push(node);
    const starting = mesh.start();
    started?.(node);
    await starting;
    return node;
  }

  /** Stops node's mesh service and takes it off the network. */
  async kill(node: SimNode): Promise<void> {
    await node.mesh.stop();
    node.net.stop();
    this.nodes.splice(this.nodes.indexOf(node), 1);
  }

  /** Advances the clock in steps of `stepMs` until `done()` holds; throws after `maxMs`. */
  async until(what: string, done: () => boolean, maxMs: number, stepMs = 500): Promise<number> {
    const t0 = this.clock.now();
    while (!done()) {
      if (this.clock.now() - t0 >= maxMs) throw new Error(`${what}: not reached within ${maxMs} ms of fake time`);
      await this.clock.advance(stepMs);
    }
    return this.clock.now() - t0;
  }

  async close(): Promise<void> {
    for (const n of this.nodes) await n.mesh.stop();
    this.dir[Symbol.dispose]();
  }
}
