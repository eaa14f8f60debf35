// /etc/findings/config.toml, derived from the embedded defaults so the two cannot drift: every
// setting is commented out at its default value, except the few the package sets on purpose.
import { DEFAULTS_TOML } from "../../src/config/load.ts";

/** Settings the package changes from the embedded defaults, and why. */
export const PACKAGE_SETTINGS: Record<string, { value: string; why: string }> = {
  log_root: { value: '"/var/log/findings"', why: "the unit's LogsDirectory (also in the journal)" },
};

const HEADER = `# /etc/findings/config.toml: configuration of the findings service (findings.service).
# Every setting is listed commented out at its built-in default ("findings config --defaults");
# uncomment and change what you need, then "systemctl restart findings".
# FINDINGS_<KEY> environment variables ("systemctl edit findings", Environment=...) override this
# file, and "findings config --config /etc/findings/config.toml" shows the result.
`;

/** A setting line of defaults.toml: `key = value`. */
const SETTING = /^([a-z_]+) = (.*)$/;

/** The packaged config: the defaults' comments as they are, each setting as `#key = value`. */
export function packagedConfig(defaults: string = DEFAULTS_TOML): string {
  const out: string[] = [];
  let pastHeader = false;
  for (const line of defaults.split("\n")) {
    // Drop the defaults' own header (the comment block before the first blank line).
    if (!pastHeader) {
      if (line.trim() === "") pastHeader = true;
      continue;
    }
    const m = SETTING.exec(line);
    if (!m) {
      out.push(line);
      continue;
    }
    const set = PACKAGE_SETTINGS[m[1]!];
    if (set) out.push(`# Set by the package: ${set.why}. Default: ${m[2]}`, `${m[1]} = ${set.value}`);
    else out.push(`#${line}`);
  }
  return HEADER + "\n" + out.join("\n");
}

/** The packaged config with every `#key = value` line uncommented: the defaults, spelled out. */
export function uncommentSettings(text: string): string {
  return text.replace(/^#([a-z_]+ = )/gm, "$1");
}
