// BoundedMap (contracts/bounded-map.ts): at most `max` entries, the oldest dropped first, Map-like calls.
import { describe, expect, test } from "bun:test";
import { BoundedMap } from "../../src/contracts/index.ts";

/** The same operations on a plain Map with the delete-first-key eviction: the order BoundedMap must keep. */
class Reference<K, V> {
  readonly map = new Map<K, V>();
  constructor(private readonly max: number) {}
  set(k: K, v: V): void {
    if (!this.map.has(k)) while (this.map.size >= this.max) this.map.delete(this.map.keys().next().value!);
    this.map.set(k, v);
  }
  setNewest(k: K, v: V): void {
    this.map.delete(k);
    this.set(k, v);
  }
}

describe("BoundedMap", () => {
  test("holds at most max entries and drops the oldest first", () => {
    const m = new BoundedMap<string, number>(3);
    for (const [i, k] of ["a", "b", "c", "d", "e"].entries()) m.set(k, i);
    expect(m.size).toBe(3);
    expect([...m.keys()]).toEqual(["c", "d", "e"]);
    expect(m.has("a")).toBe(false);
    expect(m.get("b")).toBeUndefined();
    expect(m.get("e")).toBe(4);
  });

  test("set on a held key replaces its value and keeps its place; setNewest moves it to the young end", () => {
    const m = new BoundedMap<string, number>(3);
    m.set("a", 1).set("b", 2).set("c", 3);
    m.set("a", 10);
    expect([...m]).toEqual([["a", 10], ["b", 2], ["c", 3]]);
    m.set("d", 4); // "a" is still the oldest
    expect([...m.keys()]).toEqual(["b", "c", "d"]);
    m.setNewest("b", 20);
    expect([...m.entries()]).toEqual([["c", 3], ["d", 4], ["b", 20]]);
    m.set("e", 5); // "c" is now the oldest
    expect([...m.values()]).toEqual([4, 20, 5]);
    expect(m.size).toBe(3);
  });

  test("delete frees room, and a deleted then re-set key counts from its new insertion", () => {
    const m = new BoundedMap<string, number>(3);
    m.set("a", 1).set("b", 2).set("c", 3);
    expect(m.delete("a")).toBe(true);
    expect(m.delete("a")).toBe(false);
    m.set("d", 4);
    expect([...m.keys()]).toEqual(["b", "c", "d"]);
    m.delete("b");
    m.set("b", 5); // re-inserted: newest, so "c" goes next, not "b"
    m.set("e", 6);
    expect([...m.keys()]).toEqual(["d", "b", "e"]);
  });

  test("oldestKey, shiftOldest and dropOldestWhile go from the oldest on", () => {
    const m = new BoundedMap<string, number>(10);
    expect(m.oldestKey()).toBeUndefined();
    expect(m.shiftOldest()).toBeUndefined();
    for (let i = 0; i < 6; i++) m.set(`k${i}`, i);
    m.delete("k0");
    expect(m.oldestKey()).toBe("k1");
    expect(m.shiftOldest()).toBe("k1");
    expect(m.dropOldestWhile((v) => v < 4)).toBe(2);
    expect([...m.keys()]).toEqual(["k4", "k5"]);
    expect(m.dropOldestWhile(() => false)).toBe(0);
    expect(m.dropOldestWhile(() => true)).toBe(2);
    expect(m.size).toBe(0);
  });

  test("clear empties it and it fills again", () => {
    const m = new BoundedMap<number, number>(2);
    m.set(1, 1).set(2, 2).clear();
    expect(m.size).toBe(0);
    expect(m.oldestKey()).toBeUndefined();
    m.set(3, 3).set(4, 4).set(5, 5);
    expect([...m.keys()]).toEqual([4, 5]);
  });

  test("refuses a cap that is not a positive integer", () => {
    expect(() => new BoundedMap(0)).toThrow(RangeError);
    expect(() => new BoundedMap(1.5)).toThrow(RangeError);
    expect(() => new BoundedMap(Number.NaN)).toThrow(RangeError);
  });

  test("a long random mix of calls keeps the plain Map's order of eviction (through queue cuts and rebuilds)", () => {
    let seed = 7;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (const max of [1, 5, 300]) {
      const m = new BoundedMap<number, number>(max);
      const ref = new Reference<number, number>(max);
      for (let i = 0; i < 20_000; i++) {
        const k = rand(max * 3);
        const op = rand(10);
        if (op < 5) {
          m.set(k, i);
          ref.set(k, i);
        } else if (op < 7) {
          m.setNewest(k, i);
          ref.setNewest(k, i);
        } else if (op < 9) {
          expect(m.delete(k)).toBe(ref.map.delete(k));
        } else {
          const first = ref.map.keys().next();
          expect(m.shiftOldest()).toBe(first.done ? undefined : first.value);
          if (!first.done) ref.map.delete(first.value);
        }
        expect(m.size).toBeLessThanOrEqual(max);
        expect(m.get(k)).toBe(ref.map.get(k));
        if (i % 997 === 0) expect([...m]).toEqual([...ref.map]);
      }
      expect([...m]).toEqual([...ref.map]);
      expect(m.oldestKey()).toBe(ref.map.keys().next().value);
    }
  });

  test("the age queue stays within a constant factor of the live entries", () => {
    const m = new BoundedMap<number, number>(100);
    for (let i = 0; i < 100_000; i++) {
      m.setNewest(i % 50, i); // only re-sets: every one leaves a stale slot behind
      m.set(1_000_000 + i, i); // a stream of new keys: every one evicts
    }
    const queue = (m as unknown as { queue: unknown[]; head: number }).queue;
    expect(queue.length).toBeLessThan(2 * 100 + 64 + 1024 * 2);
    expect(m.size).toBe(100);
  });
});
