// `npm pack` of the package carries the client library (ESM + .d.ts through `exports`): the tarball installs
// into an empty project, an app importing FindingsClient type-checks under strict TypeScript, and Bun runs it.
// Installing fetches the package's dependencies through npm (from its cache when it has them).
import { afterAll, expect, test } from "bun:test";
import { mkdirSync, readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { BUN, ROOT, tempDir } from "../helpers.ts";

const dir = tempDir("findings-pack-");
afterAll(() => dir[Symbol.dispose]());

function run(cmd: string[], cwd: string): { code: number; out: string } {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe", env: { ...process.env, npm_config_update_notifier: "false" } });
  return { code: r.exitCode ?? 1, out: r.stdout.toString() + r.stderr.toString() };
}

const APP = `import { FindingsClient, PunchRefusedError, expose, type PeerConnection } from "findings";
const client = new FindingsClient({ server: "127.0.0.1:7788#" + "00".repeat(32), nat: "public" });
export async function main(peerId: string): Promise<number> {
  const pool = await client.join("app:chat", { onPeer: (c: PeerConnection) => c.onStream((s) => void s.readable.pipeTo(s.writable)) });
  expose(pool, { host: "127.0.0.1", port: 8080 });
  const conn = await pool.punch(peerId, { signal: AbortSignal.timeout(5000) }).catch((e: unknown) => (e instanceof PunchRefusedError ? null : Promise.reject(e)));
  const s = await conn?.openStream("echo");
  await s?.writable.getWriter().write(new Uint8Array([1]));
  return client.id.length;
}
`;

test("npm pack → npm install into an empty project → tsc --strict accepts an app on the library → bun imports it", () => {
  const packDir = join(dir.path, "pack");
  mkdirSync(packDir);
  const pack = run(["npm", "pack", "--pack-destination", packDir], ROOT);
  expect(pack.code, pack.out).toBe(0);
  const tgz = readdirSync(packDir).find((f) => f.endsWith(".tgz"));
  expect(tgz).toBeDefined();

  const app = join(dir.path, "app");
  mkdirSync(app);
  writeFileSync(join(app, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module" }));
  const install = run(["npm", "install", "--no-audit", "--no-fund", "--ignore-scripts", join(packDir, tgz!)], app);
  expect(install.code, install.out).toBe(0);

  writeFileSync(join(app, "app.ts"), APP);
  writeFileSync(
    join(app, "tsconfig.json"),
    JSON.stringify({ compilerOptions: { target: "ES2022", module: "ESNext", moduleResolution: "bundler", strict: true, noEmit: true, lib: ["ES2022", "DOM"], typeRoots: [join(ROOT, "node_modules", "@types")], types: ["bun"] }, include: ["app.ts"] }),
  );
  const tsc = run([join(ROOT, "node_modules", ".bin", "tsc"), "-p", "."], app);
  // Without skipLibCheck, @matrixai/quic's own declarations disagree with the newest lib (its Map iterators);
  // every other file, ours included, must be clean.
  const errors = tsc.out.split("\n").filter((l) => /error TS\d+/.test(l));
  expect(errors.filter((l) => !l.startsWith("node_modules/@matrixai/quic/")), tsc.out).toEqual([]);

  const imported = run([BUN, "-e", `import { FindingsClient } from "findings"; console.log(new FindingsClient({ server: "127.0.0.1:1#${"11".repeat(32)}", nat: null }).id.length)`], app);
  expect(imported.out.trim()).toBe("64");
}, 120_000);
