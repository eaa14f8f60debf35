// Reading app-service requests: size limits first, typed errors, never a crash (DESIGN §4, STYLE §6).
import { describe, expect, test } from "bun:test";
import { encodeMessage, Status } from "../../src/wire/codec.ts";
import { DecodeError, LimitError } from "../../src/errors.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { appJoinAnswerInit, checkJoinIdentity, MAX_PUNCH_REQUEST_BYTES, readAppJoin, readPunchRequest, readShareFetch, readShareRegister, statusOfMatchError, statusOfShareRefusal } from "../../src/punch/punch-messages.ts";
import { createAppPool } from "../../src/punch/app-pool.ts";
import { NatClass } from "../../src/wire/gen/findings_pb.ts";
import { AppJoinSchema, PunchRequestSchema, ShareFetchSchema, ShareRegisterSchema } from "../../src/wire/gen/punch_pb.ts";
import { member, seeded, T0 } from "./punch-helpers.ts";

const key = generateNodeKey();
const join = (over: Record<string, unknown> = {}) =>
  encodeMessage(AppJoinSchema, { kind: "blockchain:bitcoin", nodeId: key.nodeId, nat: NatClass.NAT_SYMMETRIC, spki: new Uint8Array(32).fill(3), ...over });

describe("readAppJoin", () => {
  test("reads a valid join", () => {
    const j = readAppJoin(join({ publicKey: key.publicKey, portDelta: -2 }));
    expect(j).toMatchObject({ kind: "blockchain:bitcoin", nodeId: key.nodeId, nat: "symmetric", portDelta: -2 });
    expect(readAppJoin(join()).portDelta).toBeNull();
    expect(readAppJoin(join({ nat: NatClass.NAT_UNKNOWN })).nat).toBeNull();
    expect(readAppJoin(join({ nodeId: key.nodeId.toUpperCase() })).nodeId).toBe(key.nodeId);
  });

  test("refuses bad fields with a DecodeError naming them", () => {
    expect(() => readAppJoin(join({ spki: new Uint8Array(31) }))).toThrow(/spki must be 32 bytes/);
    expect(() => readAppJoin(join({ kind: "*" }))).toThrow(/not an app kind/);
    expect(() => readAppJoin(join({ kind: "" }))).toThrow(/kind must be/);
    expect(() => readAppJoin(join({ nodeId: "abc" }))).toThrow(/node_id must be 64 hex/);
    expect(() => readAppJoin(join({ publicKey: generateNodeKey().publicKey }))).toThrow(/not the SHA-256 of public_key/);
    expect(() => readAppJoin(join({ publicKey: new Uint8Array(5) }))).toThrow(DecodeError);
    expect(() => readAppJoin(join({ portDelta: 0 }))).toThrow(/port_delta/);
    expect(() => readAppJoin(join({ portDelta: 65 }))).toThrow(/port_delta/);
  });

  test("a payload of limit+1 bytes is refused before parsing", () => {
    expect(() => readAppJoin(new Uint8Array(MAX_PUNCH_REQUEST_BYTES + 1))).toThrow(LimitError);
  });

  test("random bytes give a typed error or a valid value, never a crash", () => {
    const rand = seeded(42);
    for (let i = 0; i < 500; i++) {
      const bytes = Uint8Array.from({ length: Math.floor(rand() * 200) }, () => Math.floor(rand() * 256));
      for (const read of [readAppJoin, readPunchRequest, readShareRegister, readShareFetch] as ((b: Uint8Array) => unknown)[]) {
        try {
          read(bytes);
        } catch (err) {
          expect(err instanceof DecodeError || err instanceof LimitError).toBe(true);
        }
      }
    }
  });

  test("checkJoinIdentity accepts only the connection's bound key", () => {
    expect(checkJoinIdentity({ nodeId: key.nodeId }, key.publicKey)).toBeNull();
    expect(checkJoinIdentity({ nodeId: key.nodeId }, generateNodeKey().publicKey)).toContain("is not the id of this connection's key");
  });
});

describe("other requests", () => {
  test("PunchRequest: empty target = random; target_kind needs a target", () => {
    expect(readPunchRequest(encodeMessage(PunchRequestSchema, { kind: "app:chat", max: 3 }))).toEqual({ kind: "app:chat", targetId: null, targetKind: undefined, max: 3 });
    const t = readPunchRequest(encodeMessage(PunchRequestSchema, { kind: "app:chat", targetId: key.nodeId, targetKind: "app:game" }));
    expect(t).toMatchObject({ targetId: key.nodeId, targetKind: "app:game" });
    expect(() => readPunchRequest(encodeMessage(PunchRequestSchema, { kind: "app:chat", targetKind: "app:game" }))).toThrow(/needs a target_id/);
    expect(() => readPunchRequest(encodeMessage(PunchRequestSchema, { kind: "app:chat", targetId: "xyz" }))).toThrow(/target_id/);
  });

  test("ShareRegister needs a port; ShareFetch max is capped at 6", () => {
    expect(readShareRegister(encodeMessage(ShareRegisterSchema, { kind: "app:chat", port: 8333 }))).toEqual({ kind: "app:chat", ip: "", port: 8333 });
    expect(() => readShareRegister(encodeMessage(ShareRegisterSchema, { kind: "app:chat", port: 0 }))).toThrow(/port 0/);
    expect(readShareFetch(encodeMessage(ShareFetchSchema, { kind: "app:chat" })).max).toBe(6);
    expect(readShareFetch(encodeMessage(ShareFetchSchema, { kind: "app:chat", max: 100 })).max).toBe(6);
    expect(readShareFetch(encodeMessage(ShareFetchSchema, { kind: "app:chat", max: 2 })).max).toBe(2);
  });
});

describe("answers and statuses", () => {
  test("the join answer carries the stake, the observed address and the rejoin flags", () => {
    const pool = createAppPool({ kinds: ["app:chat"] });
    pool.join(member({ n: 1, ip: "198.51.100.1", port: 1 }), T0);
    const r = pool.join(member({ n: 1, ip: "198.51.100.1", port: 2 }), T0 + 1);
    if (r.status !== "rejoined") throw new Error("expected rejoin");
    const init = appJoinAnswerInit({ kind: "app:chat", stakeAddress: "bc1q", source: "default", identityId: "id", foreignChain: false }, r);
    expect(init).toEqual({ kind: "app:chat", stakeAddress: "bc1q", stakeSource: "default", identityId: "id", ip: "198.51.100.1", port: 2, rejoined: true, addressChanged: true });
  });

  test("refusals map to Envelope statuses", () => {
    expect(statusOfMatchError("target-not-in-pool")).toBe(Status.NOT_FOUND);
    expect(statusOfMatchError("incompatible")).toBe(Status.REFUSED);
    expect(statusOfMatchError("same-node")).toBe(Status.BAD_REQUEST);
    expect(statusOfShareRefusal("full")).toBe(Status.FULL);
    expect(statusOfShareRefusal("too-many-pending")).toBe(Status.RATE_LIMITED);
    expect(statusOfShareRefusal("not-your-address")).toBe(Status.REFUSED);
  });
});
