// SN probe packet: vectors, layout, size limits, demux predicate and random-bytes fuzz (DESIGN §6, STYLE §6, §12).

import { describe, expect, test } from "bun:test";
import { createHmac } from "node:crypto";
import { LimitError } from "../../src/errors.ts";
import {
  buildProbe,
  isProbeKey,
  looksLikeProbe,
  newHostKey,
  verifyProbe,
  type ProbeSource,
} from "../../src/nat/probe-packet.ts";
import { SN_MAX_BYTES, SN_MIN_BYTES, SN_TMP_MAX_BYTES, SN_TMP_MIN_BYTES } from "../../src/nat/constants.ts";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");
const unhex = (s: string) => Uint8Array.from(Buffer.from(s, "hex"));

// Fixed inputs of the vectors: Key = 00 01 … 1f; Rnd16 = ff 01 02 … 0f (first byte ff shows the masking);
// TmpN = 10 11 … 1f (16 bytes). Source of the expected values: computed with Node's crypto.createHmac("sha256")
// independently of @noble/hashes (the MAC is re-checked the same way in a test below).
const KEY = Uint8Array.from({ length: 32 }, (_, i) => i);
const RND = unhex("ff0102030405060708090a0b0c0d0e0f");
const TMP = unhex("101112131415161718191a1b1c1d1e1f");
const NEWHOST_KEY_HEX = "630dcd2966c4336691125448bbb25b4ff412a49c732db2c8abc1b8581bd710dd"; // SHA-256(KEY)
const VECTORS: Record<ProbeSource, string> = {
  passage:
    "3c0102030405060708090a0b0c0d0e0f" +
    "55b7aa7230dd5a38c6de21b111f12292a7df13aca3f10a5f67d79f5469e88e63" +
    "101112131415161718191a1b1c1d1e1f",
  newPort:
    "3d0102030405060708090a0b0c0d0e0f" +
    "c5bba4c8fd32f2f5c894ea293273d86c2f48756c59201453d052cee8988adc10" +
    "101112131415161718191a1b1c1d1e1f",
  newHost:
    "3e0102030405060708090a0b0c0d0e0f" +
    "cb5d5b49ef73a3145d66da079874015fa17d10ac4e9484429c6ddd121b28302d" +
    "101112131415161718191a1b1c1d1e1f",
};

/** A rand() that hands out the given arrays in order. */
function fixedRand(...chunks: Uint8Array[]): (n: number) => Uint8Array {
  const queue = [...chunks];
  return (n) => {
    const next = queue.shift();
    if (!next || next.length < n) throw new Error(`fixedRand: no chunk of ${n} bytes`);
    return next.slice(0, n);
  };
}

function keyFor(source: ProbeSource, key: Uint8Array): Uint8Array {
  return source === "newHost" ? newHostKey(key) : key;
}

function freshKey(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

describe("SN probe vectors", () => {
  test("newHostKey is SHA-256 of the client key", () => {
    expect(hex(newHostKey(KEY))).toBe(NEWHOST_KEY_HEX);
  });

  for (const source of ["passage", "newPort", "newHost"] as const) {
    test(`buildProbe(${source}) with fixed inputs gives the stored vector`, () => {
      const probe = buildProbe(keyFor(source, KEY), source, { tmpLen: 16, rand: fixedRand(RND, TMP) });
      expect(hex(probe)).toBe(VECTORS[source]);
    });

    test(`the stored ${source} vector verifies with the client key and names its source`, () => {
      expect(verifyProbe(unhex(VECTORS[source]), KEY)).toEqual({ ok: true, source });
    });
  }

  test("the MAC equals Node's HMAC-SHA256 over label, Rnd16 and TmpN for random probes", () => {
    for (let i = 0; i < 20; i++) {
      const key = freshKey();
      const probe = buildProbe(key, "newPort");
      const expected = createHmac("sha256", key)
        .update("STUN:Cone")
        .update(probe.subarray(0, 16))
        .update(probe.subarray(48))
        .digest();
      expect(hex(probe.subarray(16, 48))).toBe(hex(expected));
    }
  });
});

describe("SN probe layout", () => {
  test("first byte keeps bits 5-2 of Rnd16[0], clears bits 7-6 and carries the source in bits 1-0", () => {
    for (const [first, source, code] of [
      [0xff, "passage", 0],
      [0xff, "newPort", 1],
      [0xff, "newHost", 2],
      [0x00, "newHost", 2],
      [0xc3, "passage", 0],
      [0x5a, "newPort", 1],
    ] as const) {
      const rnd = RND.slice();
      rnd[0] = first;
      const probe = buildProbe(KEY, source, { tmpLen: 16, rand: fixedRand(rnd, TMP) });
      expect(probe[0]! & 0xc0).toBe(0);
      expect(probe[0]! & 0x03).toBe(code);
      expect(probe[0]! & 0x3c).toBe(first & 0x3c);
    }
  });

  test("a Rnd16 that would put the RFC 5389 cookie at bytes 4-7 is altered so the probe never carries it", () => {
    const rnd = unhex("002233442112a442" + "0000000000000000");
    const probe = buildProbe(KEY, "passage", { tmpLen: 16, rand: fixedRand(rnd, TMP) });
    expect(hex(probe.subarray(4, 8))).not.toBe("2112a442");
    expect(looksLikeProbe(probe)).toBe(true);
    expect(verifyProbe(probe, KEY)).toEqual({ ok: true, source: "passage" });
  });

  test("probe length is 48 + TmpN and the default TmpN length varies within 16-1024", () => {
    expect(buildProbe(KEY, "passage", { tmpLen: 16 }).length).toBe(SN_MIN_BYTES);
    expect(buildProbe(KEY, "passage", { tmpLen: 1024 }).length).toBe(SN_MAX_BYTES);
    const lengths = new Set<number>();
    for (let i = 0; i < 50; i++) {
      const p = buildProbe(KEY, "newPort");
      expect(p.length).toBeGreaterThanOrEqual(SN_MIN_BYTES);
      expect(p.length).toBeLessThanOrEqual(SN_MAX_BYTES);
      lengths.add(p.length);
    }
    expect(lengths.size).toBeGreaterThan(10);
  });

  test("buildProbe refuses TmpN of 15 and 1025 bytes and a key that is not 32 bytes", () => {
    expect(() => buildProbe(KEY, "passage", { tmpLen: SN_TMP_MIN_BYTES - 1 })).toThrow(LimitError);
    expect(() => buildProbe(KEY, "passage", { tmpLen: SN_TMP_MAX_BYTES + 1 })).toThrow(LimitError);
    expect(() => buildProbe(KEY.subarray(0, 31), "passage")).toThrow(LimitError);
    expect(isProbeKey(KEY)).toBe(true);
    expect(isProbeKey(KEY.subarray(0, 31))).toBe(false);
  });
});

describe("verifyProbe", () => {
  test("accepts probes of every source built with a fresh key", () => {
    const key = freshKey();
    for (const source of ["passage", "newPort", "newHost"] as const) {
      expect(verifyProbe(buildProbe(keyFor(source, key), source), key)).toEqual({ ok: true, source });
    }
  });

  test("rejects a probe made with another key as bad-mac", () => {
    const probe = buildProbe(freshKey(), "passage");
    expect(verifyProbe(probe, freshKey())).toEqual({ ok: false, reason: "bad-mac" });
  });

  test("rejects a NewHost-coded probe made with the raw key (a delegate never holds it)", () => {
    const key = freshKey();
    expect(verifyProbe(buildProbe(key, "newHost"), key)).toEqual({ ok: false, reason: "bad-mac" });
  });

  test("rejects a passage-coded probe made with SHA-256(key), so a delegate cannot fake passage or NewPort", () => {
    const key = freshKey();
    expect(verifyProbe(buildProbe(newHostKey(key), "passage"), key)).toEqual({ ok: false, reason: "bad-mac" });
    expect(verifyProbe(buildProbe(newHostKey(key), "newPort"), key)).toEqual({ ok: false, reason: "bad-mac" });
  });

  test("rejects a probe whose source bits were flipped in transit", () => {
    const probe = unhex(VECTORS.passage);
    probe[0] = (probe[0]! & ~0x03) | 0x01;
    expect(verifyProbe(probe, KEY)).toEqual({ ok: false, reason: "bad-mac" });
  });

  test("rejects any single flipped bit in Rnd16, MAC or TmpN", () => {
    const good = unhex(VECTORS.newPort);
    for (const at of [1, 5, 15, 16, 30, 47, 48, 63]) {
      const bad = good.slice();
      bad[at] = bad[at]! ^ 0x10;
      expect(verifyProbe(bad, KEY)).toEqual({ ok: false, reason: "bad-mac" });
    }
  });

  test("rejects 63 bytes as too-short and 1073 bytes as too-long before any MAC work", () => {
    expect(verifyProbe(new Uint8Array(SN_MIN_BYTES - 1), KEY)).toEqual({ ok: false, reason: "too-short" });
    expect(verifyProbe(new Uint8Array(SN_MAX_BYTES + 1), KEY)).toEqual({ ok: false, reason: "too-long" });
    expect(verifyProbe(new Uint8Array(0), KEY)).toEqual({ ok: false, reason: "too-short" });
  });

  test("rejects a first byte with bit 7 or bit 6 set (QUIC) as high-bits-set", () => {
    for (const first of [0x40, 0x80, 0xc0, 0x7c]) {
      const p = unhex(VECTORS.passage);
      p[0] = first;
      expect(verifyProbe(p, KEY)).toEqual({ ok: false, reason: "high-bits-set" });
    }
  });

  test("rejects source code 3 as unknown-source", () => {
    const p = unhex(VECTORS.passage);
    p[0] = p[0]! | 0x03;
    expect(verifyProbe(p, KEY)).toEqual({ ok: false, reason: "unknown-source" });
  });

  test("throws LimitError when the client's own key is not 32 bytes (local misuse, not network input)", () => {
    expect(() => verifyProbe(unhex(VECTORS.passage), new Uint8Array(16))).toThrow(LimitError);
  });

  test("random bytes of every length 0-1100 never throw and never verify", () => {
    const key = freshKey();
    for (let len = 0; len <= 1100; len++) {
      const buf = crypto.getRandomValues(new Uint8Array(len));
      const v = verifyProbe(buf, key);
      expect(v.ok).toBe(false);
      if (!v.ok) expect(["too-short", "too-long", "high-bits-set", "unknown-source", "bad-mac"]).toContain(v.reason);
      looksLikeProbe(buf);
    }
  });

  test("random in-range bytes with a probe-like first byte are rejected as bad-mac", () => {
    const key = freshKey();
    for (let i = 0; i < 500; i++) {
      const buf = crypto.getRandomValues(new Uint8Array(SN_MIN_BYTES + (i % (SN_MAX_BYTES - SN_MIN_BYTES + 1))));
      buf[0] = buf[0]! & 0x3e; // bits 7-6 clear, source 0 or 2
      expect(verifyProbe(buf, key)).toEqual({ ok: false, reason: "bad-mac" });
    }
  });
});

describe("looksLikeProbe", () => {
  test("is true for built probes of every source", () => {
    for (const source of ["passage", "newPort", "newHost"] as const) {
      expect(looksLikeProbe(buildProbe(KEY, source))).toBe(true);
    }
  });

  test("is false for a QUIC-looking first byte, source 3, wrong sizes and an RFC 5389 cookie at bytes 4-7", () => {
    const quic = unhex(VECTORS.passage);
    quic[0] = 0xc0;
    const three = unhex(VECTORS.passage);
    three[0] = three[0]! | 0x03;
    const stun = new Uint8Array(SN_MIN_BYTES);
    stun.set([0x00, 0x01, 0x00, 0x2c, 0x21, 0x12, 0xa4, 0x42]);
    expect(looksLikeProbe(quic)).toBe(false);
    expect(looksLikeProbe(three)).toBe(false);
    expect(looksLikeProbe(new Uint8Array(SN_MIN_BYTES - 1))).toBe(false);
    expect(looksLikeProbe(new Uint8Array(SN_MAX_BYTES + 1))).toBe(false);
    expect(looksLikeProbe(stun)).toBe(false);
  });
});
