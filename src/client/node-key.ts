// The key of the client's node: pinned by hand ("ip:port#key"), known from an earlier session (known-hosts
// file), or learned now from the network (mesh-client.ts learnNodeKey: the node's signed record, its signature
// and a sealed key challenge) and then remembered. Once per client (a session pins what it learned).
import { bytesToHex } from "@noble/hashes/utils.js";
import { hexToBytes } from "@noble/hashes/utils.js";
import { learnNodeKey } from "../mesh/index.ts";
import { formatAddress, parseAddress } from "../contracts/index.ts";
import { nodeIdOf } from "../identity/index.ts";
import type { KnownHosts } from "./known-hosts.ts";

/** How the client came to trust the node's key: given with the address, from the known-hosts file, or learned
 *  on first use now. */
export type KeySource = "pinned" | "known" | "learned";

export interface ResolvedKey {
  publicKey: Uint8Array;
  nodeId: string;
  keySource: KeySource;
  /** With "learned": the node that gave the record ("ip:port"), the node itself or a trusted one. */
  recordFrom?: string;
}

export interface KeyResolverInit {
  server: { ip: string; port: number; publicKey?: Uint8Array };
  knownHosts: KnownHosts;
  /** Nodes already trusted ("ip:port#key") to ask for the node's record before the node itself. */
  trusted?: readonly string[];
  transport?: "quic" | "wss";
  /** Learn an unknown key from the network. @default true */
  learn?: boolean;
  /** Ask the newest known node for the record first. @default true */
  askKnown?: boolean;
}

/** The known-hosts entry name of a server: "ip:port", with "wss:" before a TLS-port address. */
export function knownHostName(server: { ip: string; port: number }, transport: "quic" | "wss" = "quic"): string {
  return (transport === "wss" ? "wss:" : "") + formatAddress(server.ip, server.port);
}

export function createKeyResolver(init: KeyResolverInit): (opts?: { signal?: AbortSignal; timeoutMs?: number }) => Promise<ResolvedKey> {
  let pending: Promise<ResolvedKey> | undefined;
  const { server } = init;
  const name = knownHostName(server, init.transport);
  async function resolve(opts: { signal?: AbortSignal; timeoutMs?: number }): Promise<ResolvedKey> {
    if (server.publicKey) return { publicKey: server.publicKey, nodeId: nodeIdOf(server.publicKey), keySource: "pinned" };
    const known = init.knownHosts.get(name);
    if (known) {
      const publicKey = hexToBytes(known.key);
      return { publicKey, nodeId: nodeIdOf(publicKey), keySource: "known" };
    }
    if (init.learn === false) {
      throw new Error(`Invalid server ${name}: no key given and none known (pass ip:port#<node key hex>, as \`findings id\` prints it)`);
    }
    // Nodes the user already trusts: those named, then the newest node of the known-hosts file (over QUIC).
    const via = (init.trusted ?? []).map((t) => parseAddress(t, "trusted")).filter((t) => t.publicKey);
    if (init.askKnown !== false && init.transport !== "wss") {
      const newest = init.knownHosts
        .list()
        .filter((h) => !h.address.startsWith("wss:") && h.address !== name)
        .sort((a, b) => b.firstSeen.localeCompare(a.firstSeen))[0];
      if (newest) {
        const a = parseAddress(newest.address, "known host");
        via.push({ ...a, publicKey: hexToBytes(newest.key) });
      }
    }
    const learned = await learnNodeKey(server, { signal: opts.signal, timeoutMs: opts.timeoutMs, via, transport: init.transport });
    init.knownHosts.remember(name, bytesToHex(learned.publicKey));
    return { publicKey: learned.publicKey, nodeId: learned.nodeId, keySource: "learned", recordFrom: learned.recordFrom };
  }
  return (opts = {}) => {
    if (!pending) {
      pending = resolve(opts);
      // A failed learn may be retried (a timeout, a node still starting); a success is pinned for the session.
      pending.catch(() => (pending = undefined));
    }
    return pending;
  };
}
