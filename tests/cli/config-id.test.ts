import { describe, expect, test } from "bun:test";
import { chmodSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { runCli, tempDir } from "../helpers.ts";

describe("findings config and id", () => {
  test("config --defaults prints the embedded TOML", async () => {
    const r = await runCli(["config", "--defaults"]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("server_uport = 7788");
    expect(r.stdout).toContain("[stakes]");
  });

  test("config --json shows where each value came from", async () => {
    using home = tempDir();
    writeFileSync(join(home.path, "config.toml"), "shortlist = 42\n");
    const r = await runCli(["config", "--json", "--home", home.path, "--log-level", "debug"], { env: { FINDINGS_PEERS_HELP: "3" } });
    expect(r.code).toBe(0);
    const j = JSON.parse(r.stdout);
    expect(j.config).toMatchObject({ shortlist: 42, peers_help: 3, log_level: "debug" });
    expect(j.sources).toMatchObject({ shortlist: "file", peers_help: "env", log_level: "flag" });
  });

  test("an unknown config key exits 1 with one line naming it", async () => {
    using home = tempDir();
    writeFileSync(join(home.path, "config.toml"), "colour = \"blue\"\n");
    const r = await runCli(["config", "--home", home.path]);
    expect(r.code).toBe(1);
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr).toContain("colour");
  });

  test("id refuses a key file readable by others", async () => {
    using home = tempDir();
    expect((await runCli(["id", "--home", home.path])).code).toBe(0);
    chmodSync(join(home.path, "node.key"), 0o640);
    const r = await runCli(["id", "--home", home.path]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("readable by others");
  });

  test("the home folder is created private", async () => {
    using tmp = tempDir();
    const home = join(tmp.path, "new", "home");
    expect((await runCli(["id", "--home", home])).code).toBe(0);
    const { statSync } = await import("node:fs");
    expect(statSync(home).mode & 0o777).toBe(0o700);
  });
});
