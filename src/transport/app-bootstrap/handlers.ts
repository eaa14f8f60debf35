// Node side of the app bootstrap over QUIC (seed 001 §从应用端的连接 steps 4–5, DESIGN §3), plus app.bind,
// which tells the node that the app's new connection is the pinned one (steps 7+, our addition).
//
// Protocol (numbers as in the seed):
//   1–3. app → node on a first-contact connection (any certificate accepted):
//        app.hello  AppHello{public_key, sealed_session = Seal(app, node, appHello, AppSession{session_id})}
//   4–5. node opens it with its node key and answers
//        AppHelloAnswer{sealed_cert = Seal(node, app, appCert, AppCert{cert_pem, session_id})};
//        a box that does not open → UNAUTHENTICATED.
//   6–7. app opens it, checks session_id, pins SPKI(cert_pem), closes the first connection and reconnects
//        accepting only that SPKI.
//   bind. app → node on the pinned connection:
//        app.bind   AppHello{public_key, sealed_session = Seal(app, node, APP_BIND, AppSession{session_id})}
//        The node takes the session issued at step 4 for that key (one use, APP_SESSION_TTL_MS) and marks the
//        connection pinned with the app's key → OK. The separate seal purpose keeps a hello box (which a man
//        in the middle of the untrusted first connection may have seen) from passing as a bind; the bind box
//        itself only ever travels inside the pinned TLS session.
import { METHOD } from "../../rpc/index.ts";
import { timingSafeEqual } from "node:crypto";
import { MAX_SEALED_BYTES, SEAL_PURPOSE, X25519_KEY_BYTES } from "../../constants.ts";
import { BoundedMap } from "../../contracts/index.ts";
import { SealError, errorLine } from "../../errors.ts";
import type { RunCertificate } from "../../identity/index.ts";
import type { NodeKey } from "../../identity/index.ts";
import { open, seal } from "../../identity/index.ts";
import { ANY_TRUST, perHost, type Route, type RpcReply, type Transport } from "../../rpc/index.ts";
import type { RouteTable } from "../../rpc/index.ts";
import { decodeMessage, encodeMessage, Status } from "../../wire/index.ts";
import { AppCertSchema, AppHelloAnswerSchema, AppHelloSchema, AppSessionSchema, type AppHello } from "../../wire/index.ts";
import { App } from "../../wire/index.ts";
import { bytesToHex } from "@noble/hashes/utils.js";
import { AppSessionTable } from "./sessions.ts";
import { APP_SESSION_ID_BYTES, MAX_HELLO_KIND_CHARS } from "./sessions.ts";
import { whoamiRoute } from "../quic/whoami-handler.ts";

/** Largest AppHello payload: a key, a sealed 16-byte id and protobuf framing, with room. */
const MAX_APP_HELLO_BYTES = 512;

/** app.hello and app.bind: open to first-contact links (that is where an app starts); each opens a sealed box
 *  (one or two X25519 agreements), so a host gets a few per second and its /24 (IPv6 /48) a few more. */
const BOOTSTRAP_POLICY = {
  trust: ANY_TRUST,
  rate: [...perHost(5, 20), { ratePerS: 10, burst: 40, v4Bits: 24, v6Bits: 48 }],
  maxInFlight: 64,
  maxPayloadBytes: MAX_APP_HELLO_BYTES,
} as const;
/** Hello answers kept for exact replays (~400 B each). */
const MAX_CACHED_HELLOS = 256;
/** First-contact connections remembered as having said hello (one hello each). */
const MAX_HELLO_CONNECTIONS = 8_192;

/** What a node names in every bootstrap answer for the app's kind: its reward (stake) address and identity id. */
export interface AppGreeting {
  stakeAddress: string;
  /** "kind" (the kind's own address) | "default" (the general one) | "none". */
  stakeSource: string;
  identityId: string;
}

export interface AppBootstrapComponents {
  nodeKey: NodeKey;
  cert: RunCertificate;
  /** The greeting for an app's kind ("" = none named). @default none: empty fields */
  greeting?: (kind: string) => AppGreeting;
}

/** whoami, app.hello and app.bind on `transports`, each bootstrap with its own session table. */
export function appBootstrapRoutes(components: AppBootstrapComponents, transports: readonly Transport[], init: { now?: () => number } = {}): RouteTable {
  const now = init.now ?? Date.now;
  const sessions = new AppSessionTable();
  // An exact replay of a hello gets the answer already made: it is sealed to the app key, so it tells a
  // replayer nothing new, and it spares us the two agreements. Insertion order = age.
  const answers = new BoundedMap<string, { appKey: Uint8Array; sessionId: Uint8Array; answer: Uint8Array }>(MAX_CACHED_HELLOS);
  const helloConnections = new BoundedMap<string, true>(MAX_HELLO_CONNECTIONS);

  /** Opens an AppHello-shaped payload with `purpose`; returns the app key and session id, or a refusal. */
  function openHello(payload: Uint8Array, purpose: string): { appKey: Uint8Array; sessionId: Uint8Array; kind: string } | RpcReply {
    let hello: AppHello;
    try {
      hello = decodeMessage(AppHelloSchema, payload, "AppHello", MAX_APP_HELLO_BYTES);
    } catch (err) {
      return { status: Status.BAD_REQUEST, error: errorLine(err) };
    }
    if (hello.publicKey.length !== X25519_KEY_BYTES) {
      return { status: Status.BAD_REQUEST, error: `public_key must be ${X25519_KEY_BYTES} bytes, got ${hello.publicKey.length}` };
    }
    if (hello.sealedSession.length > MAX_SEALED_BYTES) return { status: Status.BAD_REQUEST, error: "sealed_session is too large" };
    let plain: Uint8Array;
    try {
      plain = open(components.nodeKey.privateKey, hello.publicKey, purpose, hello.sealedSession);
    } catch (err) {
      if (err instanceof SealError) return { status: Status.UNAUTHENTICATED, error: "cannot open sealed_session with this node's key" };
      throw err;
    }
    let sessionId: Uint8Array;
    let kind: string;
    try {
      ({ sessionId, kind } = decodeMessage(AppSessionSchema, plain, "AppSession", MAX_APP_HELLO_BYTES));
    } catch (err) {
      return { status: Status.BAD_REQUEST, error: errorLine(err) };
    }
    if (sessionId.length !== APP_SESSION_ID_BYTES) {
      return { status: Status.BAD_REQUEST, error: `session_id must be ${APP_SESSION_ID_BYTES} bytes, got ${sessionId.length}` };
    }
    return { appKey: hello.publicKey, sessionId, kind: kind.length <= MAX_HELLO_KIND_CHARS ? kind : "" };
  }

  const hello: Route = {
    ...BOOTSTRAP_POLICY,
    transports,
    // Steps 4–5. One answered hello per first-contact connection: an app reconnects pinned after it.
    handler(payload, ctx) {
      if (helloConnections.has(ctx.connectionId)) return { status: Status.REFUSED, error: `one ${METHOD.app.hello} per connection` };
      const answered = () => {
        if (ctx.trust !== "untrusted") return;
        helloConnections.set(ctx.connectionId, true);
      };
      const replayKey = bytesToHex(payload);
      const cached = answers.get(replayKey);
      if (cached) {
        sessions.issue(cached.sessionId, cached.appKey, now());
        answered();
        return cached.answer;
      }
      const opened = openHello(payload, SEAL_PURPOSE.appHello);
      if (!("appKey" in opened)) return opened;
      sessions.issue(opened.sessionId, opened.appKey, now());
      const greeting = components.greeting?.(opened.kind);
      const body = encodeMessage(AppCertSchema, { certPem: components.cert.certPem, sessionId: opened.sessionId, kind: opened.kind, ...greeting });
      const sealedCert = seal(components.nodeKey.privateKey, opened.appKey, SEAL_PURPOSE.appCert, body);
      const answer = encodeMessage(AppHelloAnswerSchema, { sealedCert });
      answers.set(replayKey, { appKey: opened.appKey, sessionId: opened.sessionId, answer });
      answered();
      return answer;
    },
  };
  const bind: Route = {
    ...BOOTSTRAP_POLICY,
    transports,
    // Bind: the pinned reconnect names its session.
    handler(payload, ctx) {
      const opened = openHello(payload, SEAL_PURPOSE.appBind);
      if (!("appKey" in opened)) return opened;
      // One identity per connection: fresh keys on one connection would each take a seat in the app pools.
      const bound = ctx.peer.key;
      if (bound && !(bound.length === opened.appKey.length && timingSafeEqual(bound, opened.appKey))) {
        return { status: Status.REFUSED, error: "this connection is already bound to another key: open a new connection" };
      }
      if (!sessions.take(opened.sessionId, opened.appKey, now())) {
        return { status: Status.UNAUTHENTICATED, error: `unknown or expired session: send ${METHOD.app.hello} first` };
      }
      ctx.promote({ trust: "pinned", peerKey: opened.appKey });
      return { status: Status.OK };
    },
  };
  return [
    [App.method.whoami, { ...whoamiRoute, transports }],
    [App.method.hello, hello],
    [App.method.bind, bind],
  ];
}
