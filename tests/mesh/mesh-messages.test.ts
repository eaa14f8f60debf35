// Record lists decoded from mesh answers: the same records, each holding its own bytes (not views into
// the answer), so a record kept does not keep the whole answer alive.
import { describe, expect, test } from "bun:test";
import { encodeEnvelope, decodeEnvelope } from "../../src/wire/codec.ts";
import { generateNodeKey } from "../../src/identity/node-key.ts";
import { decodeFindAnswer, decodePeersAnswer, encodeFindAnswer, encodePeersAnswer } from "../../src/mesh/mesh-messages.ts";
import { buildRecord, verifyRecord } from "../../src/mesh/record.ts";

const NOW = 1_700_000_000_000;
const records = [1, 2, 3].map((i) => buildRecord(generateNodeKey(), { addresses: [{ ip: `203.0.113.${i}`, udpPort: 7788, tcpPort: 7788 }], spki: new Uint8Array(32).fill(i), stakes: { "*": "0xowner" }, seq: 1, now: NOW }));

/** The payload as a receiver sees it: a view into the envelope it came in. */
const received = (payload: Uint8Array) => decodeEnvelope(encodeEnvelope({ id: 1n, method: "m", payload })).payload;

describe("mesh answers", () => {
  for (const [name, decode] of [
    ["peers", (b: Uint8Array) => decodePeersAnswer(b)],
    ["find", (b: Uint8Array) => decodeFindAnswer(b).records],
  ] as const) {
    test(`${name} answer records equal the sent ones, verify, and do not share the answer's buffer`, () => {
      const payload = received(name === "peers" ? encodePeersAnswer(records) : encodeFindAnswer(records, []));
      const got = decode(payload);
      expect(got.length).toBe(3);
      got.forEach((r, i) => {
        expect(r.publicKey).toEqual(records[i]!.publicKey);
        expect(r.spki).toEqual(records[i]!.spki);
        expect(r.signature).toEqual(records[i]!.signature);
        expect(verifyRecord(r, NOW).ok).toBe(true);
        for (const bytes of [r.publicKey, r.spki, r.signature]) expect(bytes.buffer).not.toBe(payload.buffer);
      });
      // Each record its own buffer: keeping one does not keep the others.
      expect(got[0]!.publicKey.buffer).not.toBe(got[1]!.publicKey.buffer);
    });
  }
});
