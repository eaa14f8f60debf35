// The router's policy (src/rpc/router.ts): trust, per-prefix token buckets, in-flight cap, payload cap, refusal
// counters and disposers, on a fake clock.
import { describe, expect, test } from "bun:test";
import { AnswerError } from "../../src/rpc/errors.ts";
import { ANY_TRUST, MESH_ONLY, PINNED_OR_MESH, perHost, type RpcContext, type Transport, type Trust } from "../../src/rpc/policy.ts";
import { createRouter } from "../../src/rpc/router.ts";
import { createMetricsRegistry } from "../../src/contracts/metrics.ts";
import { DecodeError, PeerError } from "../../src/errors.ts";
import { Status } from "../../src/wire/codec.ts";
import { Mesh } from "../../src/wire/gen/services_pb.ts";
import { open } from "./open-policy.ts";
import { until } from "../wait.ts";

function ctx(over: { ip?: string; trust?: Trust; transport?: Transport; signal?: AbortSignal } = {}): RpcContext {
  return {
    method: "",
    transport: over.transport ?? "quic",
    remote: { ip: over.ip ?? "198.51.100.7", port: 4000 },
    connectionId: "c1",
    trust: over.trust ?? "untrusted",
    peer: { key: null, nodeId: null },
    signal: over.signal ?? new AbortController().signal,
    promote() {},
  };
}

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => void (t += ms) };
}

const call = (r: ReturnType<typeof createRouter>, method: string, c: RpcContext, payload = new Uint8Array(0)) => r.dispatch(method, payload, { ...c, method });

describe("trust", () => {
  test("a mesh-only method refuses untrusted and pinned callers and serves mesh links", async () => {
    const r = createRouter();
    r.add("m", open(() => new Uint8Array([1]), { trust: MESH_ONLY }));
    const untrusted = await call(r, "m", ctx());
    expect(untrusted).toMatchObject({ status: Status.REFUSED, error: "m is not allowed on a untrusted link" });
    expect((await call(r, "m", ctx({ trust: "pinned" }))).status).toBe(Status.REFUSED);
    expect(await call(r, "m", ctx({ trust: "mesh" }))).toEqual({ status: Status.OK, payload: new Uint8Array([1]) });
    expect(r.stats().refused).toEqual({ m: { trust: 2 } });
  });

  test("an app method tells a first-contact caller to run the app bootstrap", async () => {
    const r = createRouter();
    r.add("a", open(() => undefined, { trust: PINNED_OR_MESH }));
    expect(await call(r, "a", ctx())).toEqual({ status: Status.UNAUTHENTICATED, error: "a needs a pinned link: run the app bootstrap first" });
    expect((await call(r, "a", ctx({ trust: "pinned" }))).status).toBe(Status.OK);
  });

  test("a method is served only on the transports its policy names", async () => {
    const r = createRouter();
    r.add("q", open(() => undefined, { transports: ["quic"] }));
    expect((await call(r, "q", ctx({ transport: "quic" }))).status).toBe(Status.OK);
    expect(await call(r, "q", ctx({ transport: "wss" }))).toEqual({ status: Status.BAD_REQUEST, error: "unknown method q" });
    expect(r.has("q", "quic")).toBe(true);
    expect(r.has("q", "wss")).toBe(false);
  });
});

describe("rate limits per source prefix", () => {
  test("an IPv4 /32 gets its burst, then the sustained rate; another address has its own bucket", async () => {
    const c = clock();
    const r = createRouter({ now: c.now });
    r.add("m", { ...open(() => undefined), rate: perHost(2, 3) });
    const from = (ip: string) => call(r, "m", ctx({ ip }));
    for (let i = 0; i < 3; i++) expect((await from("198.51.100.7")).status).toBe(Status.OK);
    expect(await from("198.51.100.7")).toEqual({ status: Status.RATE_LIMITED, error: "too many m requests; slow down" });
    expect((await from("198.51.100.8")).status).toBe(Status.OK);
    c.advance(500); // 2 per second: one token back
    expect((await from("198.51.100.7")).status).toBe(Status.OK);
    expect((await from("198.51.100.7")).status).toBe(Status.RATE_LIMITED);
    expect(r.stats().refused).toEqual({ m: { rate: 2 } });
    expect(r.counters().rpc_refused_rate).toBe(2);
  });

  test("all addresses of one IPv6 /64 share a bucket; the next /64 does not", async () => {
    const r = createRouter({ now: clock().now });
    r.add("m", { ...open(() => undefined), rate: perHost(1, 2) });
    const from = (ip: string) => call(r, "m", ctx({ ip }));
    expect((await from("2001:db8:1:2::1")).status).toBe(Status.OK);
    expect((await from("2001:db8:1:2:ffff:ffff:ffff:fffe")).status).toBe(Status.OK);
    expect((await from("2001:db8:1:2:aaaa::9")).status).toBe(Status.RATE_LIMITED);
    expect((await from("2001:db8:1:3::1")).status).toBe(Status.OK);
  });

  test("a looser /24 and /48 limit added to the policy bounds a whole network of hosts", async () => {
    const r = createRouter({ now: clock().now });
    r.add("m", { ...open(() => undefined), rate: [...perHost(100, 2), { ratePerS: 100, burst: 5, v4Bits: 24, v6Bits: 48 }] });
    const from = (ip: string) => call(r, "m", ctx({ ip }));
    const statuses: Status[] = [];
    for (let host = 1; host <= 6; host++) statuses.push((await from(`203.0.113.${host}`)).status);
    // Each host is within its own /32 burst of 2, but the /24 has room for 5.
    expect(statuses).toEqual([Status.OK, Status.OK, Status.OK, Status.OK, Status.OK, Status.RATE_LIMITED]);
    expect((await from("203.0.114.1")).status).toBe(Status.OK);
    // The same for IPv6: five /64s of one /48 pass, the sixth finds the /48 spent.
    for (let i = 0; i < 5; i++) expect((await from(`2001:db8:5:${i}::1`)).status).toBe(Status.OK);
    expect((await from("2001:db8:5:99::1")).status).toBe(Status.RATE_LIMITED);
    expect((await from("2001:db8:6::1")).status).toBe(Status.OK);
  });
});

describe("in-flight and payload caps", () => {
  test("requests beyond maxInFlight are refused while the others run, and admitted once they finish", async () => {
    const r = createRouter();
    const gates: Array<() => void> = [];
    r.add("slow", { ...open(() => new Promise<void>((resolve) => gates.push(resolve))), maxInFlight: 2 });
    const a = call(r, "slow", ctx({ ip: "192.0.2.1" }));
    const b = call(r, "slow", ctx({ ip: "192.0.2.2" }));
    expect(await call(r, "slow", ctx({ ip: "192.0.2.3" }))).toEqual({ status: Status.RATE_LIMITED, error: "more than 2 slow requests in flight" });
    await until(() => gates.length === 2, { what: "both slow requests running", intervalMs: 1 });
    gates.splice(0).forEach((go) => go());
    expect([(await a).status, (await b).status]).toEqual([Status.OK, Status.OK]);
    const c = call(r, "slow", ctx({ ip: "192.0.2.3" }));
    await until(() => gates.length === 1, { what: "the next slow request running", intervalMs: 1 });
    gates[0]!();
    expect((await c).status).toBe(Status.OK);
    expect(r.stats().refused).toEqual({ slow: { "in-flight": 1 } });
  });

  test("a payload one byte over the limit is refused before the handler; at the limit it runs", async () => {
    const r = createRouter();
    let ran = 0;
    r.add("m", { ...open(() => void ran++), maxPayloadBytes: 16 });
    expect((await call(r, "m", ctx(), new Uint8Array(16))).status).toBe(Status.OK);
    expect(await call(r, "m", ctx(), new Uint8Array(17))).toEqual({ status: Status.BAD_REQUEST, error: "Cannot accept m of 17 bytes: limit is 16" });
    expect(ran).toBe(1);
    expect(r.counters()).toMatchObject({ rpc_calls: 1, rpc_refused_payload: 1 });
  });
});

describe("answers and errors", () => {
  test("bytes, nothing and a reply object become answers; errors map to statuses without internals", async () => {
    const r = createRouter();
    r.addAll([
      ["bytes", open(() => new Uint8Array([7]))],
      ["none", open(() => undefined)],
      ["reply", open(() => ({ status: Status.NOT_FOUND, error: "no such kind" }))],
      ["answer-error", open(() => Promise.reject(new AnswerError(Status.FULL, "pool full", { code: 4001, reason: "full" })))],
      ["decode", open(() => Promise.reject(new DecodeError("thing", "bad")))],
      ["peer", open(() => Promise.reject(new PeerError("not for you")))],
      ["boom", open(() => Promise.reject(new Error("secret")))],
    ]);
    expect(await call(r, "bytes", ctx())).toEqual({ status: Status.OK, payload: new Uint8Array([7]) });
    expect(await call(r, "none", ctx())).toEqual({ status: Status.OK });
    expect(await call(r, "reply", ctx())).toEqual({ status: Status.NOT_FOUND, error: "no such kind" });
    expect(await call(r, "answer-error", ctx())).toEqual({ status: Status.FULL, error: "pool full", thenClose: { code: 4001, reason: "full" } });
    expect(await call(r, "decode", ctx())).toEqual({ status: Status.BAD_REQUEST, error: "Cannot decode thing: bad" });
    expect(await call(r, "peer", ctx())).toEqual({ status: Status.REFUSED, error: "not for you" });
    expect(await call(r, "boom", ctx())).toEqual({ status: Status.INTERNAL, error: "boom failed" });
    expect(r.stats().failed).toEqual({ boom: 1 });
  });

  test("a handler still running when the request's signal aborts is answered INTERNAL", async () => {
    const r = createRouter();
    r.add("hang", open(() => new Promise(() => {})));
    const ac = new AbortController();
    const answer = call(r, "hang", ctx({ signal: ac.signal }));
    ac.abort(new Error("deadline"));
    expect(await answer).toEqual({ status: Status.INTERNAL, error: "hang did not finish in time" });
  });

  test("handler times are observed by method and transport; refused requests are not", async () => {
    const metrics = createMetricsRegistry();
    const requestSeconds = metrics.histogram({ name: "findings_rpc_request_duration_seconds", help: "Handler time.", labelNames: ["method", "transport"] });
    const r = createRouter({ requestSeconds });
    r.add(Mesh.method.peers, open(() => new Uint8Array([1]), { transports: ["quic", "wss"], trust: MESH_ONLY }));
    await call(r, "mesh.peers", ctx({ trust: "mesh", transport: "wss" }));
    await call(r, "mesh.peers", ctx({ trust: "mesh", transport: "quic" }));
    await call(r, "mesh.peers", ctx({ trust: "untrusted", transport: "quic" }));
    expect(requestSeconds.get({ method: "mesh.peers", transport: "wss" }).count).toBe(1);
    expect(requestSeconds.get({ method: "mesh.peers", transport: "quic" }).count).toBe(1);
  });

  test("unknown methods are counted under *", async () => {
    const r = createRouter();
    await call(r, "nope", ctx());
    expect(r.stats().refused).toEqual({ "*": { unknown: 1 } });
    expect(r.counters().rpc_refused_unknown).toBe(1);
  });
});

describe("registration", () => {
  test("a descriptor registers under its wire name; the disposer removes it and is idempotent", async () => {
    const r = createRouter();
    const dispose = r.add(Mesh.method.peers, open(() => undefined, { transports: ["wss"] }));
    expect(r.has("mesh.peers", "wss")).toBe(true);
    dispose();
    dispose();
    expect(r.has("mesh.peers", "wss")).toBe(false);
    expect((await call(r, "mesh.peers", ctx({ transport: "wss" }))).status).toBe(Status.BAD_REQUEST);
  });

  test("one method may have a QUIC and a WSS handler; a second one on the same transport is refused unless replacing", () => {
    const r = createRouter();
    r.add("m", open(() => undefined, { transports: ["quic"] }));
    const wss = r.add("m", open(() => undefined, { transports: ["wss"] }));
    expect(() => r.add("m", open(() => undefined, { transports: ["quic"] }))).toThrow("Cannot add m on quic: it already has a handler");
    const replacement = r.add("m", open(() => undefined, { transports: ["wss"] }), { replace: true });
    // The replaced route's disposer leaves the replacement alone.
    wss();
    expect(r.has("m", "wss")).toBe(true);
    replacement();
    expect(r.has("m", "wss")).toBe(false);
    expect(r.has("m", "quic")).toBe(true);
  });

  test("addAll adds nothing when one route conflicts, and one disposer removes the whole table", () => {
    const r = createRouter();
    r.add("b", open(() => undefined));
    expect(() => r.addAll([["a", open(() => undefined)], ["b", open(() => undefined)]])).toThrow("Cannot add b");
    expect(r.has("a", "quic")).toBe(false);
    const dispose = r.addAll([["a", open(() => undefined)], ["c", open(() => undefined, { trust: ANY_TRUST })]]);
    dispose();
    expect([r.has("a", "quic"), r.has("c", "wss"), r.has("b", "quic")]).toEqual([false, false, true]);
  });
});
