// A Map with a cap whose oldest entry goes first, in O(1) amortised. The usual way (`map.delete(map.keys().next().value)`)
// scans: the runtime's ordered hash map (JSC, in Bun) keeps deleted slots until it rehashes and every iteration from
// the front walks over them, so at the cap each insert paid a walk over the earlier evictions. Measured with
// scripts/bench/bounded-map.ts (Bun 1.4.5, a busy 2-core VM), a stream of new keys into a full table cost
// 0.4–0.5 µs an insert at 1,000 entries, 11–14 µs at 10,000 and 33–35 µs at 65,536; here 0.3–0.6 µs at each.

/** One entry: the map and the age queue hold the same object, so a queue slot whose key was deleted or
 *  re-inserted since is recognised (the map no longer holds that object) and skipped. */
interface Slot<K, V> {
  readonly key: K;
  value: V;
}

/** Stale slots at the front of the queue before it is cut (cutting copies the live rest). */
const MIN_CUT = 1024;
/** sweepIdleAtCap sweeps at most once per this share of the cap in calls. */
const SWEEP_EVERY_CAP_SHARE = 1 / 4;
/** Stale slots tolerated inside the queue beyond its live entries, before it is rebuilt from the map. */
const MIN_SLACK = 64;

/**
 * A Map of at most `max` entries. Guarantees: `size <= max` after every call; entries are kept in age order
 * (insertion order, as a Map; `setNewest` moves an entry to the young end), and when a new key would go past
 * `max` the oldest entries go first, exactly one by one — the same order as deleting `keys().next()`, without its
 * scan. Eviction, `shiftOldest` and `dropOldestWhile` cost O(1) amortised per entry; lookups cost one Map lookup.
 * Iteration (`keys`, `values`, `entries`, for…of) goes from the oldest to the newest.
 */
export class BoundedMap<K, V> implements Iterable<[K, V]> {
  private readonly map = new Map<K, Slot<K, V>>();
  /** Slots in age order from `head`; a slot the map no longer holds is stale. */
  private queue: (Slot<K, V> | undefined)[] = [];
  private head = 0;
  /** sweepIdleAtCap calls since its last sweep (none yet: the first call at the cap sweeps). */
  private callsSinceSweep = Infinity;

  constructor(readonly max: number) {
    if (!(max >= 1) || !Number.isInteger(max)) throw new RangeError(`BoundedMap max must be a positive integer, got ${max}`);
  }

  get size(): number {
    return this.map.size;
  }

  has(key: K): boolean {
    return this.map.has(key);
  }

  get(key: K): V | undefined {
    return this.map.get(key)?.value;
  }

  /** Sets `key`'s value. A key already held keeps its place (as Map.set); a new one goes to the young end,
   *  after the oldest entries are dropped to make room. */
  set(key: K, value: V): this {
    const held = this.map.get(key);
    if (held) held.value = value;
    else this.insert(key, value);
    return this;
  }

  /** Sets `key`'s value and makes it the newest entry (as delete then set). */
  setNewest(key: K, value: V): this {
    this.map.delete(key);
    this.insert(key, value);
    return this;
  }

  delete(key: K): boolean {
    return this.map.delete(key);
  }

  clear(): void {
    this.map.clear();
    this.queue = [];
    this.head = 0;
  }

  /** The oldest entry's key, or undefined when empty. */
  oldestKey(): K | undefined {
    return this.front()?.key;
  }

  /** Removes the oldest entry and returns its key (undefined when empty). */
  shiftOldest(): K | undefined {
    const s = this.front();
    if (!s) return undefined;
    this.map.delete(s.key);
    this.queue[this.head++] = undefined;
    return s.key;
  }

  /** Removes entries from the oldest on while `drop(value, key)` is true; stops at the first one it keeps.
   *  For entries whose expiry grows with their age order (a fixed window from insertion). Returns how many went. */
  dropOldestWhile(drop: (value: V, key: K) => boolean): number {
    let n = 0;
    for (let s = this.front(); s && drop(s.value, s.key); s = this.front()) {
      this.map.delete(s.key);
      this.queue[this.head++] = undefined;
      n++;
    }
    return n;
  }

  /** For tables whose idle entries carry no state (full token buckets); call before inserting a new key. At
   *  the cap, deletes every entry `idle` approves, at most once per `share` of the cap in calls: a sweep per
   *  new key would walk the whole table per key under a flood of new ones. In between, inserts evict the
   *  oldest. */
  sweepIdleAtCap(idle: (value: V, key: K) => boolean, share = SWEEP_EVERY_CAP_SHARE): void {
    this.callsSinceSweep++;
    if (this.map.size < this.max || this.callsSinceSweep < this.max * share) return;
    this.callsSinceSweep = 0;
    for (const [k, s] of this.map) if (idle(s.value, k)) this.map.delete(k);
  }

  *keys(): IterableIterator<K> {
    yield* this.map.keys();
  }

  *values(): IterableIterator<V> {
    for (const s of this.map.values()) yield s.value;
  }

  *entries(): IterableIterator<[K, V]> {
    for (const s of this.map.values()) yield [s.key, s.value];
  }

  [Symbol.iterator](): IterableIterator<[K, V]> {
    return this.entries();
  }

  private insert(key: K, value: V): void {
    while (this.map.size >= this.max) this.shiftOldest();
    const s: Slot<K, V> = { key, value };
    this.map.set(key, s);
    this.queue.push(s);
    this.compact();
  }

  /** The oldest live slot, skipping (and forgetting) stale ones at the front of the queue. */
  private front(): Slot<K, V> | undefined {
    const q = this.queue;
    while (this.head < q.length) {
      const s = q[this.head]!;
      if (this.map.get(s.key) === s) return s;
      q[this.head++] = undefined;
    }
    return undefined;
  }

  /** Keeps the queue within a constant factor of the live entries; each rebuild is paid for by the pushes
   *  or removals since the last one. */
  private compact(): void {
    const q = this.queue;
    const pending = q.length - this.head;
    if (pending > 2 * this.map.size + MIN_SLACK) {
      // Many deleted or re-set keys: rebuild from the map, which holds the live slots in the same order.
      this.queue = [...this.map.values()];
      this.head = 0;
    } else if (this.head >= MIN_CUT && this.head * 2 >= q.length) {
      this.queue = q.slice(this.head);
      this.head = 0;
    }
  }
}
