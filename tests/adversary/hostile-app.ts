// A hostile app for the adversary suite: it talks the real app protocol (bootstrap, bind, join) to a real
// node over QUIC, but does what an honest client never does: rebinds one connection with fresh keys, opens
// many connections from one address, keeps a connection up on keep-alives alone.
import { METHOD } from "../../src/rpc/methods.ts";
import { SEAL_PURPOSE } from "../../src/constants.ts";
import { generateNodeKey, type NodeKey } from "../../src/identity/node-key.ts";
import { seal } from "../../src/identity/seal.ts";
import { natToProto } from "../../src/nat/class.ts";
import { bootstrapApp } from "../../src/transport/app-bootstrap/bootstrap.ts";
import type { QuicLink } from "../../src/transport/quic/link.ts";
import { createUdpClient, type UdpClient } from "../../src/transport/udp/client.ts";
import { encodeMessage, Status } from "../../src/wire/codec.ts";
import { AppHelloSchema, AppSessionSchema } from "../../src/wire/index.ts";
import { AppJoinSchema } from "../../src/wire/gen/punch_pb.ts";

export interface NodeTarget {
  ip: string;
  port: number;
  publicKey: Uint8Array;
}

export interface HostileLink {
  client: UdpClient;
  link: QuicLink;
  key: NodeKey;
}

/** One bootstrapped, bound QUIC link from `host` (any loopback address works on Linux). */
export async function boundLink(node: NodeTarget, host = "127.0.0.1", key = generateNodeKey()): Promise<HostileLink> {
  const client = createUdpClient({}, { host });
  await client.start();
  try {
    const { link } = await bootstrapApp(client, { addr: { ip: node.ip, port: node.port }, nodePublicKey: node.publicKey }, { appKey: key });
    return { client, link, key };
  } catch (err) {
    await client.stop();
    throw err;
  }
}

/** app.join for `kind` under `key`'s identity; the answer's status. */
export async function join(link: QuicLink, key: NodeKey, kind = "app:chat"): Promise<Status> {
  const payload = encodeMessage(AppJoinSchema, { kind, nodeId: key.nodeId, nat: natToProto("public"), spki: new Uint8Array(32).fill(7), publicKey: key.publicKey });
  return (await link.request(METHOD.app.join, payload)).status;
}

/** Runs app.hello then app.bind for a fresh key on an already bound link: a second identity on one connection.
 *  Returns the fresh key and the bind's status. */
export async function rebind(link: QuicLink, node: NodeTarget): Promise<{ key: NodeKey; status: Status }> {
  const key = generateNodeKey();
  const session = encodeMessage(AppSessionSchema, { sessionId: crypto.getRandomValues(new Uint8Array(16)) });
  const box = (purpose: string) => encodeMessage(AppHelloSchema, { publicKey: key.publicKey, sealedSession: seal(key.privateKey, node.publicKey, purpose, session) });
  const hello = await link.request(METHOD.app.hello, box(SEAL_PURPOSE.appHello));
  if (hello.status !== Status.OK) return { key, status: hello.status };
  const bind = await link.request(METHOD.app.bind, box(SEAL_PURPOSE.appBind));
  return { key, status: bind.status };
}
