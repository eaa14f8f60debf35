// What the two server sides of the NAT tests share (cone-server.ts STUN:Cone, lifetime-server.ts STUN:Live):
// sessions named by a random token and tied to the QUIC connection that opened them, so a test's datagrams only
// ever go where that connection's 4-tuple was validated; and the decoding of the requests that name them.
import { bytesToHex } from "@noble/hashes/utils.js";
import type { DescMessage, MessageShape } from "@bufbuild/protobuf";
import { errorLine } from "../errors.ts";
import { decodeMessage, Status } from "../wire/index.ts";
import { NAT_TOKEN_BYTES } from "./constants.ts";

/** Why a request is refused (the answer's status and one line). */
export interface Refusal {
  status: Status;
  error: string;
}

export type Decoded<T> = { ok: true; req: T } | { ok: false; refusal: Refusal };

/** Decodes a nat.* request of at most `maxBytes`; a malformed one is a BAD_REQUEST. */
export function decodeRequest<D extends DescMessage>(schema: D, payload: Uint8Array, place: string, maxBytes: number): Decoded<MessageShape<D>> {
  try {
    return { ok: true, req: decodeMessage(schema, payload, place, maxBytes) };
  } catch (err) {
    return { ok: false, refusal: { status: Status.BAD_REQUEST, error: errorLine(err) } };
  }
}

export interface TokenSession {
  /** The session token, hex. */
  tokenHex: string;
  /** The client's probe key K. */
  key: Uint8Array;
  connectionId: string;
}

export class SessionTable<S extends TokenSession> {
  private readonly sessions = new Map<string, S>();

  /** `what` names a session in refusals; `release` frees what a closed session held (timers, sockets). */
  constructor(
    private readonly what: string,
    private readonly release: (s: S) => void,
  ) {}

  get size(): number {
    return this.sessions.size;
  }

  all(): S[] {
    return [...this.sessions.values()];
  }

  add(s: S): void {
    this.sessions.set(s.tokenHex, s);
  }

  has(s: S): boolean {
    return this.sessions.get(s.tokenHex) === s;
  }

  /** The session a datagram's token names (datagrams carry no connection). */
  byToken(token: Uint8Array): S | undefined {
    return this.sessions.get(bytesToHex(token));
  }

  keyOf(tokenHex: string): Uint8Array | undefined {
    return this.sessions.get(tokenHex)?.key;
  }

  close(s: S): void {
    this.sessions.delete(s.tokenHex);
    this.release(s);
  }

  /** Decodes a request that names a session by its token, and finds the session. Tests run on the connection
   *  that opened them: its 4-tuple is the one the QUIC handshake validated. */
  request<D extends DescMessage>(schema: D, payload: Uint8Array, place: string, maxBytes: number, connectionId: string): { ok: true; req: MessageShape<D>; session: S } | { ok: false; refusal: Refusal } {
    const d = decodeRequest(schema, payload, place, maxBytes);
    if (!d.ok) return d;
    const token = (d.req as { token?: unknown }).token;
    if (!(token instanceof Uint8Array) || token.length !== NAT_TOKEN_BYTES) return refused(Status.BAD_REQUEST, `token must be ${NAT_TOKEN_BYTES} bytes`);
    const s = this.sessions.get(bytesToHex(token));
    if (!s) return refused(Status.NOT_FOUND, `no such ${this.what} (expired?)`);
    if (s.connectionId !== connectionId) return refused(Status.REFUSED, `the ${this.what} belongs to another connection`);
    return { ok: true, req: d.req, session: s };
  }

  dropConnection(connectionId: string): void {
    for (const s of this.all()) if (s.connectionId === connectionId) this.close(s);
  }

  stop(): void {
    for (const s of this.all()) this.close(s);
  }
}

function refused(status: Status, error: string): { ok: false; refusal: Refusal } {
  return { ok: false, refusal: { status, error } };
}
