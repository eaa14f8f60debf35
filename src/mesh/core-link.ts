// What the mesh core needs of links and transports: real WSS mesh links (link.ts, link-service.ts)
// and QUIC (transport/udp) satisfy these, and so do the in-memory links (memory-link.ts,
// memory-net.ts) that let many mesh cores run in one process.
import type { HostPort } from "../contracts/index.ts";
import type { Router } from "../rpc/index.ts";
import type { Envelope, NodeRecord } from "../wire/index.ts";
import type { LinkRequestOptions, LinkTrust } from "./link.ts";
import type { MeshDialOptions } from "./link-service.ts";

export interface LinkCloseInfo {
  readonly code: number;
  readonly reason: string;
}

/** A live link as the mesh core sees it. MeshLink (link.ts) is one. */
export interface CoreLink {
  /** The peer's node id once its key is proven (mesh links), else null. */
  readonly peerNodeId: string | null;
  readonly trust: LinkTrust;
  /** "out" when we asked for the link. */
  readonly direction: "in" | "out";
  /** Last measured round trip, in ms. */
  readonly rttMs: number | null;
  /** The peer's service address when known, else the socket's remote end. */
  readonly remote: HostPort;
  /** The socket's remote end (a first contact is known by it). */
  readonly socketRemote: HostPort;
  /** Our end: the address the peer reached. */
  readonly local: HostPort;
  /** Wall time the link was set up (for status ages). */
  readonly openedAt: number;
  /** An inbound mesh link: the record the dialler sent in its hello, as sent (not verified yet). */
  readonly helloRecord?: NodeRecord;
  readonly isOpen: boolean;
  /** Sends a request and waits for the answer, whatever its status; rejects when the link goes. */
  request(method: string, payload?: Uint8Array, opts?: LinkRequestOptions): Promise<Envelope>;
  close(code?: number, reason?: string): void;
  /** Called once when the link is gone; returns an unsubscribe function. */
  onClose(cb: (info: LinkCloseInfo) => void): () => void;
}

/** The link service as the mesh core uses it (MeshLinks in link-service.ts is one). */
export interface MeshNet {
  /** Every established (bootstrapped both ways) link, whichever side asked. */
  onMeshLink(cb: (link: CoreLink) => void): () => void;
  /** Serves the peers' requests on every link: the mesh adds its WSS routes here (handlers.ts). */
  readonly router: Router;
  /** Bootstrap to the node holding `peerPublicKey` at `addr`; resolves with the mesh link. */
  dialMesh(addr: HostPort, peerPublicKey: Uint8Array, opts?: MeshDialOptions): Promise<CoreLink>;
  /** First contact: a link with no proven key, good for online help, key checks, echoes. */
  dialUntrusted(addr: HostPort, opts?: MeshDialOptions): Promise<CoreLink>;
}

/** A request link over UDP (QuicLink is one). */
export interface UdpRequestLink {
  request(method: string, payload?: Uint8Array, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Envelope>;
  close(): Promise<void>;
}

/** The node's UDP endpoint as the mesh core uses it: app requests and self-check dials. */
export interface MeshUdp {
  readonly port: number;
  /** Serves QUIC requests: the mesh adds its QUIC routes here (handlers.ts). */
  readonly router: Router;
  dial(addr: HostPort, opts?: { signal?: AbortSignal; timeoutMs?: number }): Promise<UdpRequestLink>;
}
