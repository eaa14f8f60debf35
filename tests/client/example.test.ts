// The example app (examples/file-copy) on loopback, as its README says to run it: `send` prints its id, and
// `receive <id>` gets the file byte for byte through a punched link.
import { afterAll, beforeAll, expect, test } from "bun:test";
import { createHash } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, ROOT, startServe, tempDir, type ServeProcess } from "../helpers.ts";
import { collectLines, until } from "../wait.ts";

const home = tempDir("findings-example-");
const COPY = join(ROOT, "examples", "file-copy", "copy.ts");
let node: ServeProcess;
let server: string;

beforeAll(async () => {
  const dir = join(home.path, "node");
  mkdirSync(dir);
  writeFileSync(join(dir, "config.toml"), `[stakes]\n"app:chat" = ""\n`);
  node = await startServe(["--home", dir, "--host", "127.0.0.1", "--port", "0", "--admin", "", "--public"]);
  server = `127.0.0.1:${node.ready.udpPort}#${node.ready.publicKey}`;
}, 30_000);

afterAll(async () => {
  await node?.stop();
  home[Symbol.dispose]();
});

test("examples/file-copy: send prints an id; receive <id> writes the same bytes", async () => {
  const src = join(home.path, "src.bin");
  const dst = join(home.path, "dst.bin");
  const data = new Uint8Array(3 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i += 65536) crypto.getRandomValues(data.subarray(i, i + 65536));
  writeFileSync(src, data);
  const sender = Bun.spawn([BUN, COPY, "send", src, "--server", server, "--nat", "public"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  try {
    const lines = collectLines(sender.stdout);
    const hello = await until(() => lines.map((l) => JSON.parse(l) as { id?: string }).find((o) => o.id), { what: "the sender's id", timeoutMs: 15_000 });
    const receiver = Bun.spawnSync([BUN, COPY, "receive", hello.id!, dst, "--server", server, "--nat", "public"], { cwd: ROOT, stdout: "pipe", stderr: "pipe", timeout: 60_000 });
    expect(receiver.exitCode, receiver.stderr.toString()).toBe(0);
    const out = JSON.parse(receiver.stdout.toString()) as { bytes: number; sha256: string };
    const want = createHash("sha256").update(data).digest("hex");
    expect(out).toMatchObject({ bytes: data.length, sha256: want });
    expect(createHash("sha256").update(readFileSync(dst)).digest("hex")).toBe(want);
  } finally {
    sender.kill("SIGTERM");
    await sender.exited;
  }
}, 60_000);
