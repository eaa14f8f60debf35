// What a method allows (DESIGN §3 trust levels, §4 limits): declared once per method next to its handler,
// enforced by the router before the handler runs.
import type { MeshLink } from "../mesh/index.ts";
import type { Status } from "../wire/index.ts";

/** The transport a request came on: a QUIC stream or a WSS mesh link. */
export type Transport = "quic" | "wss";

/** "untrusted": first contact, nobody proved a key. "pinned": an app bound its link after the app bootstrap
 *  (inbound), or we dialled with a pin (outbound). "mesh": a bootstrapped mesh link, both keys proven. */
export type Trust = "untrusted" | "pinned" | "mesh";

export const ANY_TRUST: readonly Trust[] = ["untrusted", "pinned", "mesh"];
export const PINNED_OR_MESH: readonly Trust[] = ["pinned", "mesh"];
export const MESH_ONLY: readonly Trust[] = ["mesh"];
export const BOTH_TRANSPORTS: readonly Transport[] = ["quic", "wss"];

/** A token bucket per source prefix: each address is counted in its /v4Bits (IPv4) or /v6Bits (IPv6). */
export interface RateLimit {
  ratePerS: number;
  burst: number;
  /** @default 32 */
  v4Bits?: number;
  /** @default 64 */
  v6Bits?: number;
}

export interface MethodPolicy {
  /** Transports that serve the method. @default BOTH_TRANSPORTS */
  transports?: readonly Transport[];
  /** Trust levels that may call it. */
  trust: readonly Trust[];
  /** Every limit must have a token for the source (e.g. one per /32 and /64, a looser one per /24 and /48). */
  rate: readonly RateLimit[];
  /** Requests of this method running at once, whoever sent them. */
  maxInFlight: number;
  /** Largest request payload, in bytes. */
  maxPayloadBytes: number;
}

/** One per-host bucket: the usual per-source limit. */
export function perHost(ratePerS: number, burst: number): RateLimit[] {
  return [{ ratePerS, burst, v4Bits: 32, v6Bits: 64 }];
}

/** A per-host bucket (IPv4 /32, IPv6 /64) and a per-network one (/24, /48) `netFactor` times looser: many
 *  hosts of one network share the network's bucket, so more addresses do not buy more requests. */
export function perHostAndNet(ratePerS: number, burst: number, netFactor = 4): RateLimit[] {
  return [...perHost(ratePerS, burst), { ratePerS: ratePerS * netFactor, burst: burst * netFactor, v4Bits: 24, v6Bits: 48 }];
}

/** Who asks, as the transport knows it. */
export interface RpcContext {
  /** The wire name of the method. */
  readonly method: string;
  readonly transport: Transport;
  /** The socket's remote end (IPv4-mapped IPv6 shown as IPv4). */
  readonly remote: { readonly ip: string; readonly port: number };
  /** QUIC: the shared connection id; WSS: "wss-<link serial>". */
  readonly connectionId: string;
  readonly trust: Trust;
  /** The peer's X25519 key and node id once proven (bound app, pinned dial that named it, mesh peer). */
  readonly peer: { readonly key: Uint8Array | null; readonly nodeId: string | null };
  /** Aborted when the request times out, the link closes or the endpoint stops. */
  readonly signal: AbortSignal;
  /** Raises the link's trust once the caller proved `peerKey` (app.bind). Never lowers it. */
  promote(to: { trust: Trust; peerKey: Uint8Array }): void;
  /** The mesh link the request came on (WSS only). */
  readonly link?: MeshLink;
}

/** What a handler answers. Bytes mean OK with that payload; nothing means OK, empty. `thenClose` closes a WSS
 *  link once the answer is written. Throwing AnswerError picks the status (see answerOfError). */
export interface RpcReply {
  status?: Status;
  payload?: Uint8Array;
  error?: string;
  thenClose?: { code: number; reason: string };
}
export type RpcAnswer = RpcReply | Uint8Array | void;

/** One signature for every method on every transport: the request payload and who asks. */
export type RpcHandler = (request: Uint8Array, ctx: RpcContext) => RpcAnswer | Promise<RpcAnswer>;

/** A method's policy and its handler, registered together. */
export interface Route extends MethodPolicy {
  handler: RpcHandler;
}
