// `findings punch --wait --expose HOST:PORT` and `findings punch ID --forward [HOST:]PORT`: a TCP pipe through
// the punched link (ssh -L style), built only on the client library (src/client). Both stay up until Ctrl-C,
// follow re-mappings (the membership re-joins and takes re-offers by itself) and print one line per TCP
// connection when it ends (NDJSON with --json).
import { PeerError, errorLine } from "../errors.ts";
import { FindingsClient, expose, forward, type Membership, type PipeConnection } from "../client/index.ts";
import { describeResult, type PunchResult } from "../punch/index.ts";
import type { NatClassName } from "../nat/index.ts";
import type { Logger } from "../contracts/index.ts";
import { printJson } from "./common.ts";
import { nodeJson, noteLearnedKey } from "./node-info.ts";

export interface PipeArgs {
  server: string;
  kind: string;
  home: string;
  json: boolean;
  nat: { nat: NatClassName | null; source: string; note?: string };
  host?: string;
  port: number;
  log?: Logger;
  /** Called once the pipe is up, with a function that stops it. */
  onStop(stop: () => Promise<void>): void;
}

/** "HOST:PORT", "[v6]:PORT" or "PORT" (then `defaultHost`). */
export function parseHostPort(text: string, flag: string, defaultHost?: string): { host: string; port: number } {
  const m = /^(?:\[([^\]]+)\]:|([^:]+):)?(\d{1,5})$/.exec(text.trim());
  const host = m?.[1] ?? m?.[2] ?? defaultHost;
  const port = m ? Number(m[3]) : NaN;
  if (!m || host === undefined || !Number.isInteger(port) || port < (flag === "--forward" ? 0 : 1) || port > 65535) {
    throw new Error(`Invalid flag ${flag}: ${JSON.stringify(text)} is not allowed (allowed: ${defaultHost ? "[HOST:]PORT" : "HOST:PORT"}, e.g. 127.0.0.1:8080)`);
  }
  return { host, port };
}

function describeConnection(c: PipeConnection): string {
  const what = `${c.pipe} #${c.conn} ${c.from} → ${c.to} (peer ${c.peer.slice(0, 16)}…): ${c.bytesUp} B up, ${c.bytesDown} B down in ${c.ms} ms`;
  return c.ok ? what : `${what}, failed: ${c.error}`;
}

function printer(json: boolean) {
  return {
    result: (r: PunchResult) => (json ? printJson(r) : process.stdout.write(describeResult(r) + "\n")),
    connection: (c: PipeConnection) => (json ? printJson(c) : process.stdout.write(describeConnection(c) + "\n")),
  };
}

function watchMembership(m: Membership, print: ReturnType<typeof printer>, json: boolean, skip: Set<string>): void {
  m.on("result", (r) => {
    if (r.attemptId && skip.has(r.attemptId)) return;
    print.result(r);
  });
  m.on("rejoin", (j) => {
    if (json) printJson({ id: j.nodeId, waiting: true, rejoined: true, kind: j.kind, address: j.address });
    else process.stdout.write(`rejoined ${j.kind} as ${j.address}\n`);
  });
}

function newClient(a: PipeArgs): FindingsClient {
  return new FindingsClient({ server: a.server, home: a.home, nat: a.nat.nat, host: a.host, log: a.log });
}

/** --wait --expose: join, print the hello line, offer `target` to every peer that punches in. */
export async function runExpose(a: PipeArgs, target: { host: string; port: number }): Promise<void> {
  const client = newClient(a);
  const print = printer(a.json);
  const m = await client.join(a.kind, { port: a.port });
  a.onStop(() => client.close());
  watchMembership(m, print, a.json, new Set());
  const exposed = `${target.host.includes(":") ? `[${target.host}]` : target.host}:${target.port}`;
  expose(m, target, { onConnection: print.connection });
  const j = m.joined;
  const node = await client.joinedNode(m);
  noteLearnedKey(client, node);
  if (a.json) {
    printJson({ id: m.id, waiting: true, kind: j.kind, address: j.address, localPort: m.port, nat: a.nat.nat, natSource: a.nat.source, ...(a.nat.note ? { natNote: a.nat.note } : {}), stakeAddress: j.stakeAddress, stakeSource: j.stakeSource, identityId: j.identityId, keySource: node.keySource, node: nodeJson(node), expose: exposed });
  } else {
    process.stdout.write(`${m.id}\nexposing ${exposed} in ${j.kind} as ${j.address} (nat ${a.nat.nat ?? "unknown"}); Ctrl-C to stop\n`);
  }
  await new Promise(() => {});
}

/** ID --forward: punch the peer, print the result, listen, carry each TCP connection to the peer. */
export async function runForward(a: PipeArgs, peerId: string, listen: { host: string; port: number }, signal: AbortSignal): Promise<void> {
  const client = newClient(a);
  const print = printer(a.json);
  a.onStop(() => client.close());
  const m = await client.join(a.kind, { port: a.port, signal });
  let first: PunchResult;
  const skip = new Set<string>();
  try {
    const conn = await m.punch(peerId, { signal });
    first = conn.result;
  } catch (err) {
    const results = (err as { results?: PunchResult[] }).results;
    if (results?.[0]) print.result(results[0]);
    throw new PeerError(errorLine(err));
  }
  if (first.attemptId) skip.add(first.attemptId);
  const node = await client.joinedNode(m);
  noteLearnedKey(client, node);
  print.result({ ...first, keySource: node.keySource, node: nodeJson(node) } as PunchResult);
  watchMembership(m, print, a.json, skip);
  const fwd = await forward(m, peerId, listen, { onConnection: print.connection });
  a.onStop(async () => {
    await fwd.close();
    await client.close();
  });
  if (a.json) printJson({ forwarding: true, listen: fwd.address, peer: peerId, kind: a.kind });
  else process.stdout.write(`forwarding ${fwd.address} → ${peerId.slice(0, 16)}… (its exposed address); Ctrl-C to stop\n`);
  await new Promise(() => {});
}
