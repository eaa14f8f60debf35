// Builds the client library for the npm package (`npm pack` runs it as prepack): dist/lib/index.js (ESM, one
// bundle of src/client/index.ts with the package's dependencies left as imports) and dist/lib/index.d.ts
// (declarations emitted by tsc from the same entry). `exports` in package.json points at both.
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";

const root = join(import.meta.dir, "..");
const out = join(root, "dist", "lib");
const pkg = JSON.parse(readFileSync(join(root, "package.json"), "utf8")) as { dependencies: Record<string, string> };

rmSync(out, { recursive: true, force: true });
mkdirSync(out, { recursive: true });
const result = await Bun.build({
  entrypoints: [join(root, "src", "client", "index.ts")],
  outdir: out,
  target: "bun",
  format: "esm",
  external: Object.keys(pkg.dependencies),
  naming: "index.js",
});
if (!result.success) {
  for (const m of result.logs) console.error(m);
  process.exit(1);
}

// Declarations: tsc over the library entry only, into dist/lib/types, then one index.d.ts that re-exports them.
const tsc = Bun.spawnSync([join(root, "node_modules", ".bin", "tsc"), "-p", join(root, "scripts", "tsconfig.lib.json")], { stdout: "inherit", stderr: "inherit" });
if (tsc.exitCode !== 0) process.exit(tsc.exitCode ?? 1);
await Bun.write(join(out, "index.d.ts"), `export * from "./types/client/index.ts";\n`);
console.log(`built ${out}`);
