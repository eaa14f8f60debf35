import { describe, expect, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { createLogger } from "../../src/ops/logger.ts";
import { tempDir } from "../helpers.ts";

describe("logger", () => {
  test("writes JSON lines at or above the level, with child fields", async () => {
    using dir = tempDir();
    const log = createLogger({ root: dir.path, level: "info", now: () => new Date("2026-11-27T10:00:00Z") });
    log.debug("hidden");
    log.child({ room: "mesh" }).info("link up", { peer: "127.0.0.2:7788", bytes: new Uint8Array([1, 2]), n: 5n });
    log.warn("careful");
    await log.close();
    const lines = readFileSync(join(dir.path, "findings-2026-11-27.log"), "utf8").trim().split("\n").map((l) => JSON.parse(l));
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatchObject({ level: "info", msg: "link up", room: "mesh", peer: "127.0.0.2:7788", bytes: "0102", n: "5" });
    expect(lines[1]).toMatchObject({ level: "warn", msg: "careful" });
  });

  test("rotates to a new file when the UTC date changes", async () => {
    using dir = tempDir();
    let t = new Date("2026-11-27T23:59:59Z");
    const log = createLogger({ root: dir.path, level: "debug", now: () => t });
    log.info("before midnight");
    t = new Date("2026-11-28T00:00:01Z");
    log.info("after midnight");
    await log.close();
    expect(readdirSync(dir.path).sort()).toEqual(["findings-2026-11-27.log", "findings-2026-11-28.log"]);
  });
});
