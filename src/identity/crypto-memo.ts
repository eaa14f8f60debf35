// Opt-in memo of pure key operations, for many nodes in one process (the network simulator): an
// X25519 key agreement, a derived signing key, an Ed25519 signature or its verification gives the same
// output for the same input bytes, so it is computed once and looked up after. Off by default: a
// node process never turns it on. Keys of the memo are the whole inputs (each byte one character, each
// part prefixed with its length), so a changed byte is a new computation, never a cached "valid".

/** Two generations per table: lookups try the young one, then the old one (a hit there moves up). When
 *  the young one is full it becomes the old one and the old one is dropped. Evicting the oldest entry
 *  one by one (`map.keys().next()` then delete) would cost a scan over every earlier deletion in the
 *  runtime's ordered hash map: at 200,000 entries ~0.1 ms a miss, the simulator's largest cost. */
interface Table {
  young: Map<string, unknown>;
  old: Map<string, unknown>;
}

const tables = new Map<string, Table>();
let generationSize = 0;

/** Turns the memo on for this process, each table holding up to about `max` entries (the older half
 *  dropped at once when it is full). */
export function enableCryptoMemo(max = 200_000): void {
  generationSize = Math.max(1, Math.floor(max / 2));
}

/** Turns the memo off and empties it. */
export function disableCryptoMemo(): void {
  generationSize = 0;
  tables.clear();
}

/** Each part as its length, a tag (b: bytes, s: text) and its content (bytes as latin1: one char code
 *  0..255 per byte), joined: the memo key. The length prefix keeps the join unambiguous. Copying the
 *  bytes (rather than viewing them through `.buffer`) spares the runtime from giving a small array its
 *  own ArrayBuffer. */
export function memoKey(...parts: (Uint8Array | string)[]): string {
  let out = "";
  for (const p of parts) out += typeof p === "string" ? `${p.length}s${p}` : `${p.length}b${Buffer.from(p).toString("latin1")}`;
  return out;
}

/** `compute()` or its remembered result for `key` in `table`; computes every time while the memo is off.
 *  `key` is only called when the memo is on. */
export function memo<T>(table: string, key: () => string, compute: () => T): T {
  if (generationSize === 0) return compute();
  let t = tables.get(table);
  if (!t) tables.set(table, (t = { young: new Map(), old: new Map() }));
  const k = key();
  if (t.young.has(k)) return t.young.get(k) as T;
  const v = t.old.has(k) ? (t.old.get(k) as T) : compute();
  if (t.young.size >= generationSize) {
    t.old = t.young;
    t.young = new Map();
  }
  t.young.set(k, v);
  return v;
}
