// Builds dist/findings_<version>_amd64.deb with dpkg-deb (`npm run package`), and with `--baseline`
// dist/findings_<version>_amd64-baseline.deb from the baseline binary (x64 CPUs without AVX2).
// The binary is rebuilt unless it is newer than every source; FINDINGS_BIN names one to use as is.
import { chmodSync, copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { packagedConfig } from "../packaging/debian/config.ts";
import pkg from "../package.json" with { type: "json" };

export const ROOT = join(import.meta.dir, "..");
const DEBIAN = join(ROOT, "packaging", "debian");
const MAINTAINER_SCRIPTS = ["postinst", "prerm", "postrm"];

export interface Flavor {
  baseline: boolean;
  /** The compiled binary in dist/. */
  bin: string;
  /** The package file in dist/. */
  deb: string;
}

export function flavor(baseline: boolean, version = packageVersion()): Flavor {
  return {
    baseline,
    bin: join(ROOT, "dist", baseline ? "findings-baseline" : "findings"),
    deb: join(ROOT, "dist", `findings_${version}_amd64${baseline ? "-baseline" : ""}.deb`),
  };
}

export function packageVersion(): string {
  return pkg.version;
}

/** Newest modification time under `path` (files only), 0 when it does not exist. */
function newestMtime(path: string): number {
  let st;
  try {
    st = statSync(path);
  } catch {
    return 0;
  }
  if (!st.isDirectory()) return st.mtimeMs;
  let newest = 0;
  for (const name of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, name)));
  return newest;
}

/** True when `file` exists and is newer than everything it is built from. */
export function isFresh(file: string, inputs: string[]): boolean {
  const built = newestMtime(file);
  return built > 0 && inputs.every((input) => newestMtime(input) < built);
}

const BINARY_INPUTS = ["src", "scripts/build.ts", "package.json", "package-lock.json"].map((p) => join(ROOT, p));
const DEB_INPUTS = [...BINARY_INPUTS, DEBIAN, join(ROOT, "scripts", "package.ts"), join(ROOT, "README.md")];

/** The binary to package: FINDINGS_BIN if set, else dist/ rebuilt when older than the sources. */
export async function ensureBinary(f: Flavor): Promise<string> {
  const given = process.env.FINDINGS_BIN;
  if (given && !f.baseline) return given;
  if (isFresh(f.bin, BINARY_INPUTS)) return f.bin;
  const args = [process.execPath, join(ROOT, "scripts", "build.ts"), ...(f.baseline ? ["--baseline"] : [])];
  const build = Bun.spawn(args, { cwd: ROOT, stdout: "inherit", stderr: "inherit" });
  if ((await build.exited) !== 0) throw new Error(`${args.slice(1).join(" ")} failed`);
  return f.bin;
}

/** Runs a command and returns its stdout; a non-zero exit throws with its stderr. */
export async function run(cmd: string[], opts: { cwd?: string } = {}): Promise<string> {
  const p = Bun.spawn(cmd, { cwd: opts.cwd ?? ROOT, stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err.trim()}`);
  return out;
}

function put(root: string, path: string, mode: number, content: string | { copyOf: string }): void {
  const dest = join(root, path);
  mkdirSync(join(dest, ".."), { recursive: true, mode: 0o755 });
  if (typeof content === "string") writeFileSync(dest, content);
  else copyFileSync(content.copyOf, dest);
  chmodSync(dest, mode);
}

/** Total size of the files under `dir` in KiB, for Installed-Size. */
function sizeKiB(dir: string): number {
  let bytes = 0;
  const walk = (d: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name));
      else bytes += statSync(join(d, e.name)).size;
    }
  };
  walk(dir);
  return Math.ceil(bytes / 1024);
}

/** Lays out the package tree and runs dpkg-deb. Returns the .deb path. */
export async function buildDeb(f: Flavor, bin: string): Promise<string> {
  const stage = mkdtempSync(join(tmpdir(), "findings-deb-"));
  try {
    // Directories 0755 whatever the umask of the machine that builds.
    chmodSync(stage, 0o755);
    put(stage, "usr/bin/findings", 0o755, { copyOf: bin });
    put(stage, "usr/lib/systemd/system/findings.service", 0o644, { copyOf: join(DEBIAN, "findings.service") });
    put(stage, "etc/findings/config.toml", 0o644, packagedConfig());
    put(stage, "usr/share/doc/findings/README.md", 0o644, { copyOf: join(ROOT, "README.md") });
    put(stage, "usr/share/doc/findings/copyright", 0o644, copyright());
    const installedSize = sizeKiB(stage);

    const control = (await Bun.file(join(DEBIAN, "control.in")).text())
      .replace("@VERSION@", packageVersion())
      .replace("@INSTALLED_SIZE@", String(installedSize))
      .replace(
        " @FLAVOR@",
        f.baseline
          ? " This build runs on every x86-64 CPU (Bun's baseline runtime, no AVX2 needed)."
          : " This build needs an x86-64 CPU with AVX2 (Haswell, 2013, or later); the\n _amd64-baseline.deb runs on older ones.",
      );
    put(stage, "DEBIAN/control", 0o644, control);
    cpSync(join(DEBIAN, "conffiles"), join(stage, "DEBIAN", "conffiles"));
    chmodSync(join(stage, "DEBIAN", "conffiles"), 0o644);
    for (const name of MAINTAINER_SCRIPTS) put(stage, `DEBIAN/${name}`, 0o755, { copyOf: join(DEBIAN, name) });

    mkdirSync(join(ROOT, "dist"), { recursive: true });
    // --root-owner-group: files owned by root in the package without fakeroot; xz as Debian does.
    await run(["dpkg-deb", "--root-owner-group", "-Zxz", "--build", stage, f.deb]);
    return f.deb;
  } finally {
    rmSync(stage, { recursive: true, force: true });
  }
}

function copyright(): string {
  return [
    "Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/",
    "Upstream-Name: findings",
    "",
    "Files: *",
    "License: MIT",
    " The findings binary embeds the Bun runtime (MIT, with LGPL-2 JavaScriptCore)",
    " and @matrixai/quic with quiche (Apache-2.0).",
    "",
  ].join("\n");
}

/** The .deb for `f`, rebuilt only when it is older than its inputs (or FINDINGS_BIN is set). */
export async function ensureDeb(f: Flavor): Promise<string> {
  const bin = await ensureBinary(f);
  if (bin === f.bin && isFresh(f.deb, [...DEB_INPUTS, f.bin])) return f.deb;
  return buildDeb(f, bin);
}

if (import.meta.main) {
  const f = flavor(process.argv.includes("--baseline"));
  const deb = await buildDeb(f, await ensureBinary(f));
  console.log(`built ${deb} (${(statSync(deb).size / 2 ** 20).toFixed(1)} MiB)`);
}
