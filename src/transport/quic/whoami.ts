// `findings whoami` over QUIC, as a library call: own ephemeral socket, app bootstrap when the server's key
// is known (DESIGN §3), then one whoami request (DESIGN §1).
import { METHOD } from "../../rpc/index.ts";
import { isIP } from "node:net";
import { generateNodeKey } from "../../identity/index.ts";
import { decodeMessage } from "../../wire/index.ts";
import { WhoamiResponseSchema } from "../../wire/index.ts";
import { formatAddress } from "../../contracts/index.ts";
import { bootstrapApp, type AppKey } from "../app-bootstrap/bootstrap.ts";
import { expectOk, type QuicLink } from "./link.ts";
import { createUdpClient } from "../udp/client.ts";
import type { Logger } from "../../contracts/index.ts";

export interface QuicWhoamiResult {
  /** "ip:port" or "[v6]:port" as the server sees us. */
  address: string;
  ip: string;
  port: number;
  /** Round trip of the whoami request itself, in ms. */
  rttMs: number;
  /** True when the answer came over a bootstrapped, SPKI-pinned link. */
  pinned: boolean;
}

export interface QuicWhoamiOptions {
  /** The server's X25519 key: with it the answer comes over a pinned link; without it, first contact. */
  nodePublicKey?: Uint8Array;
  /** Key to bootstrap with. @default a fresh one per call (an app without identity). */
  appKey?: AppKey;
  signal?: AbortSignal;
  timeoutMs?: number;
  log?: Logger;
}

export async function quicWhoami(server: { ip: string; port: number }, opts: QuicWhoamiOptions = {}): Promise<QuicWhoamiResult> {
  // Bind the family the server needs: an IPv4-only socket for IPv4 servers keeps the local address plain.
  const client = createUdpClient({ log: opts.log }, { host: isIP(server.ip) === 6 ? "::" : "0.0.0.0", port: 0 });
  await client.start();
  try {
    const step = { signal: opts.signal, timeoutMs: opts.timeoutMs };
    let link: QuicLink;
    if (opts.nodePublicKey) {
      ({ link } = await bootstrapApp(client, { addr: server, nodePublicKey: opts.nodePublicKey }, { appKey: opts.appKey ?? generateNodeKey(), ...step }));
    } else {
      link = await client.dial(server, step);
    }
    const t0 = performance.now();
    const answer = await link.request(METHOD.app.whoami, undefined, step);
    const rttMs = performance.now() - t0;
    const me = decodeMessage(WhoamiResponseSchema, expectOk(answer), "WhoamiResponse");
    return { address: formatAddress(me.ip, me.port), ip: me.ip, port: me.port, rttMs, pinned: link.pinned };
  } finally {
    await client.stop();
  }
}
