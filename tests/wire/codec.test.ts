import { describe, expect, test } from "bun:test";
import { decodeEnvelope, decodeMessage, encodeAnswer, encodeEnvelope, encodeMessage, Status } from "../../src/wire/codec.ts";
import { EnvelopeSchema, NodeRecordSchema, WhoamiResponseSchema } from "../../src/wire/gen/findings_pb.ts";
import { DecodeError, LimitError } from "../../src/errors.ts";
import { MAX_ENVELOPE_BYTES, PROTOCOL_VERSION } from "../../src/constants.ts";

describe("envelope", () => {
  test("round trips a request and its answer", () => {
    const payload = encodeMessage(WhoamiResponseSchema, { ip: "203.0.113.7", port: 40000, transport: "quic" });
    const req = decodeEnvelope(encodeEnvelope({ id: 42n, method: "whoami" }));
    expect(req).toMatchObject({ version: PROTOCOL_VERSION, id: 42n, method: "whoami", status: Status.REQUEST });
    const ans = decodeEnvelope(encodeAnswer(req, Status.OK, payload));
    expect(ans.id).toBe(42n);
    expect(ans.status).toBe(Status.OK);
    expect(decodeMessage(WhoamiResponseSchema, ans.payload, "whoami")).toMatchObject({ ip: "203.0.113.7", port: 40000 });
  });

  test("an oversized envelope is refused before parsing", () => {
    const big = new Uint8Array(MAX_ENVELOPE_BYTES + 1);
    expect(() => decodeEnvelope(big)).toThrow(LimitError);
    expect(() => encodeEnvelope({ id: 1n, method: "x", payload: new Uint8Array(MAX_ENVELOPE_BYTES) })).toThrow(LimitError);
  });

  test("a wrong version is a DecodeError", () => {
    const bytes = encodeMessage(EnvelopeSchema, { version: 99, id: 1n, method: "whoami" });
    expect(() => decodeEnvelope(bytes)).toThrow(/version 99 is not supported/);
  });

  test("an empty method is a DecodeError", () => {
    expect(() => decodeEnvelope(new Uint8Array([0x08, 0x01]))).toThrow(/method name/);
  });

  test("random bytes give typed errors, never anything else", () => {
    let decoded = 0;
    for (let i = 0; i < 5000; i++) {
      const junk = crypto.getRandomValues(new Uint8Array(1 + (i % 300)));
      try {
        decodeEnvelope(junk);
        decoded++;
      } catch (err) {
        expect(err).toBeInstanceOf(DecodeError);
      }
    }
    expect(decoded).toBeLessThan(50);
  });

  test("truncated envelopes are DecodeErrors", () => {
    const full = encodeEnvelope({ id: 7n, method: "mesh.peers", payload: new Uint8Array(100).fill(7) });
    for (let n = 1; n < full.length; n += 7) expect(() => decodeEnvelope(full.subarray(0, n))).toThrow(DecodeError);
  });

  test("node record decoding names its place", () => {
    expect(() => decodeMessage(NodeRecordSchema, new Uint8Array([0xff, 0xff, 0xff]), "node record")).toThrow(/Cannot decode node record/);
  });
});
