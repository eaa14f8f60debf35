// A test-only lying node (seed 001 §公钥广播与验证): a real Findings node whose `mesh.peers` answer carries another node's record with the key rewritten (and re-signed by that key, so only the key check can catch it).
//
// Usage: bun liar-node.ts --host IP --port N --home DIR --target ip:port#key --victim IP
// 1. Starts a public node (no peers; its only outgoing link is the one to the target).
// 2. Fetches the victim's genuine record from the target (`mesh.peers` over QUIC).
// 3. Forges it: same addresses, kinds and stakes, but a fresh public key, signed with that key's
//    record signing key (the signature verifies; the node id is new).
// 4. Replaces its `mesh.peers` handler to answer [own record, forged record], joins the target's mesh
//    (the target asks for peers on the new link), prints {"event":"ready",...}; when that link
//    closes it waits `--redial-ms`, dials the target again and prints how that link ended.
import { clone } from "@bufbuild/protobuf";
import { parseArgs } from "node:util";
import { loadConfig } from "../../src/config/load.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { askPeers } from "../../src/mesh/mesh-client.ts";
import { encodePeersAnswer } from "../../src/mesh/mesh-messages.ts";
import { METHOD } from "../../src/rpc/methods.ts";
import { answerKeyCheck } from "../../src/mesh/record-check.ts";
import { open } from "../rpc/open-policy.ts";
import { recordNodeId, signRecord } from "../../src/mesh/record.ts";
import { createNode } from "../../src/node.ts";
import { ensureHome } from "../../src/ops/home.ts";
import { silentLogger } from "../../src/ops/logger.ts";
import { parseAddress } from "../../src/contracts/address.ts";
import { NodeRecordSchema } from "../../src/wire/gen/findings_pb.ts";
import { ONE_MACHINE } from "../helpers.ts";

const { values } = parseArgs({
  options: {
    host: { type: "string" },
    port: { type: "string" },
    home: { type: "string" },
    target: { type: "string" },
    victim: { type: "string" },
    "redial-ms": { type: "string", default: "3000" },
  },
});
const say = (obj: Record<string, unknown>) => process.stdout.write(JSON.stringify(obj) + "\n");

const target = parseAddress(values.target!, "--target");
ensureHome(values.home!);
const { config } = loadConfig({
  home: values.home!,
  flags: {
    host: values.host!,
    server_uport: Number(values.port),
    server_tport: Number(values.port),
    admin: "",
    public: true,
    peers: [],
    // Its one outgoing link is the one it dials to the target itself (it has no candidates before).
    mesh_out: 1,
    mesh_in: 8,
    max_links_per_ip: 256,
    ...ONE_MACHINE,
  },
});
const node = await createNode({ config, home: values.home!, log: silentLogger });
await node.start();

// 2–3.
const known = await askPeers({ ip: target.ip, port: target.port });
const genuine = known.records.find((r) => r.addresses.some((a) => a.ip === values.victim));
if (!genuine) {
  say({ event: "error", error: `the target does not know ${values.victim}` });
  process.exit(1);
}
const fake = generateNodeKey();
const forged = clone(NodeRecordSchema, genuine);
forged.publicKey = fake.publicKey;
const signed = signRecord(forged, fake.privateKey);

// 4.
await node.meshService.ready;
const own = node.meshService.record()!;
// From here on the script alone decides what the liar's links do. It still answers key checks for its own
// record, so only the forged record can fail.
await node.meshService.stop();
node.mesh.router.addAll([
  [METHOD.mesh.peers, open(() => encodePeersAnswer([own, signed]), { transports: ["wss"] })],
  [METHOD.mesh.keyCheck, open((payload) => answerKeyCheck(node.key, payload, own), { transports: ["wss"] })],
]);
const link = await node.mesh.dialMesh({ ip: target.ip, port: target.port }, target.publicKey!);
say({ event: "ready", id: node.key.nodeId, forgedId: recordNodeId(signed), victimId: recordNodeId(genuine) });
const first = await link.closed;
say({ event: "closed", code: first.code, reason: first.reason });

await Bun.sleep(Number(values["redial-ms"])); // the scenario: the liar comes back a while later
try {
  const again = await node.mesh.dialMesh({ ip: target.ip, port: target.port }, target.publicKey!);
  // A bound on the wait, not a wait: a link still open after 5 s is reported as such (and fails the test).
  const info = await Promise.race([again.closed, Bun.sleep(5000).then(() => ({ code: 0, reason: "still open" }))]);
  say({ event: "redial", code: info.code, reason: info.reason });
} catch (err) {
  say({ event: "redial", code: -1, reason: err instanceof Error ? err.message : String(err) });
}

const stop = async () => {
  await node.stop();
  process.exit(0);
};
process.on("SIGTERM", () => void stop());
process.on("SIGINT", () => void stop());
await new Promise(() => {});
