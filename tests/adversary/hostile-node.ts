// Shared helpers of the adversary suite: honest nodes and hostile nodes on real sockets, in this process, on a loopback /24 of the run's own.
//
// An honest node is a plain `createNode` (the code under test). A hostile node is a real node too
// (real TLS, QUIC, mesh bootstrap), started --public, whose mesh service is then stopped so the test
// alone decides what it does: `serve()` scripts any method's answer on WSS and/or QUIC, `dialMesh()`
// joins an honest node's mesh (the honest node then asks it for peers, searches through it, ...).
// By default a hostile node answers `mesh.peers` with its genuine record and key checks for it
// honestly, so whatever else the test scripts is the only lie.
//
//   const net = createAdversaryNet("framing");
//   const h = await net.honest(1, { public: true });
//   const m = await net.hostile(2);
//   m.serve(METHOD.mesh.keyCheck, (payload) => ..., ["wss"]);
//   await m.dialMesh(h);
//   ...
//   afterEach(() => net.stopAll());
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { clone, fromBinary } from "@bufbuild/protobuf";
import { loadConfig, type Overrides } from "../../src/config/load.ts";
import type { NodeKey } from "../../src/identity/node-key.ts";
import { encodePeersAnswer } from "../../src/mesh/mesh-messages.ts";
import { answerKeyCheck } from "../../src/mesh/record-check.ts";
import { signRecord } from "../../src/mesh/record.ts";
import { createNode, type FindingsNode } from "../../src/node.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import type { RpcHandler, Transport } from "../../src/rpc/policy.ts";
import { KeyChallengeSchema } from "../../src/wire/gen/mesh_pb.ts";
import { NodeRecordSchema, type NodeAddress, type NodeRecord } from "../../src/wire/gen/findings_pb.ts";
import { freeUdpTcpPort, loopbackPrefix, ONE_MACHINE, tempDir } from "../helpers.ts";
import { open } from "../rpc/open-policy.ts";

export interface HostileNode {
  readonly node: FindingsNode;
  readonly key: NodeKey;
  readonly host: string;
  /** Its genuine signed record (as it was when the node started serving). */
  readonly record: NodeRecord;
  /** Scripts `method` on `transports` (replacing whatever answered it before). */
  serve(method: string, handler: RpcHandler, transports?: Transport[]): void;
  /** Opens a mesh link to an honest node (dial, sealed bootstrap, dial-back), as a node joining it. */
  dialMesh(target: FindingsNode): ReturnType<FindingsNode["mesh"]["dialMesh"]>;
  /** `rec` with `changes`, re-signed with this node's key (what a relay that rewrites records sends). */
  resign(rec: NodeRecord, changes?: Partial<Pick<NodeRecord, "stakes" | "seq" | "addresses" | "issuedAtMs" | "kinds">>): NodeRecord;
}

export interface AdversaryNet {
  readonly prefix: string;
  readonly port: number;
  /** An honest node on host <prefix>.<n>; `home` reuses a folder (a restart with the same key). */
  honest(n: number, flags?: Overrides, home?: string): Promise<FindingsNode>;
  /** A hostile node on host <prefix>.<n> (see the file comment). */
  hostile(n: number, flags?: Overrides): Promise<HostileNode>;
  /** "ip:port#key", what an honest node takes as --peer. */
  peerOf(node: FindingsNode): string;
  stopAll(): Promise<void>;
}

let serial = 0;

export async function createAdversaryNet(name: string): Promise<AdversaryNet> {
  const prefix = loopbackPrefix();
  const port = await freeUdpTcpPort(`${prefix}.1`);
  const dir = tempDir(`findings-adversary-${name}-`);
  const running: FindingsNode[] = [];

  async function start(n: number, flags: Overrides, home = join(dir.path, `n${n}-${serial++}`)): Promise<FindingsNode> {
    mkdirSync(home, { recursive: true, mode: 0o700 });
    const { config } = loadConfig({
      home,
      flags: { host: `${prefix}.${n}`, server_uport: port, server_tport: port, admin: "", max_links_per_ip: 256, ...ONE_MACHINE, ...flags },
    });
    const node = await createNode({ config, home, log: silentLogger });
    running.push(node);
    await node.start();
    return node;
  }

  return {
    prefix,
    port,
    async honest(n, flags = {}, home) {
      const node = await start(n, flags, home);
      await node.meshService.ready;
      return node;
    },
    async hostile(n, flags = {}) {
      const node = await start(n, { public: true, peers: [], ...flags });
      await node.meshService.ready;
      const record = node.meshService.record();
      if (!record) throw new Error("the hostile node did not build its record");
      // From here on the script decides: no upkeep, no merging, no routes of the mesh service.
      await node.meshService.stop();
      const disposers = new Map<string, () => void>();
      const serve = (method: string, handler: RpcHandler, transports: Transport[] = ["wss"]) => {
        for (const t of transports) {
          disposers.get(`${method}/${t}`)?.();
          disposers.set(`${method}/${t}`, node.mesh.router.add(method, open(handler, { transports: [t] }), { replace: true }));
        }
      };
      serve(METHOD.mesh.peers, () => encodePeersAnswer([record]));
      serve(METHOD.mesh.keyCheck, (payload) => answerKeyCheck(node.key, payload, record));
      return {
        node,
        key: node.key,
        host: `${prefix}.${n}`,
        record,
        serve,
        dialMesh: (target) => node.mesh.dialMesh({ ip: target.tls.host, port: target.tls.port }, target.key.publicKey),
        resign: (rec, changes = {}) => signRecord(Object.assign(clone(NodeRecordSchema, rec), changes), node.key.privateKey),
      };
    },
    peerOf: (node) => `${node.tls.host}:${node.tls.port}#${Buffer.from(node.key.publicKey).toString("hex")}`,
    async stopAll() {
      await Promise.all(running.splice(0).map((n) => n.stop()));
    },
  };
}

/** The checker's X25519 key in a `mesh.key-check` payload: it travels in clear, so the named node
 *  can tell checkers apart and answer each differently. */
export function challengerOf(payload: Uint8Array): Uint8Array {
  return fromBinary(KeyChallengeSchema, payload).publicKey;
}

/** A node's service address as a record lists it. */
export function addressOf(node: FindingsNode): NodeAddress {
  const rec = node.meshService.record();
  if (!rec?.addresses[0]) throw new Error("the node has no record");
  return rec.addresses[0];
}

export function sameKey(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a).equals(Buffer.from(b));
}
