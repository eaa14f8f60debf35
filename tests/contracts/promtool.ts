// `promtool check metrics` (Debian package prometheus) for the metrics tests; undefined when it is missing.

export const promtool = Bun.which("promtool");

/** promtool's verdict on `text`: exit code and what it printed (lint problems, parse errors). */
export async function promtoolCheck(text: string): Promise<{ code: number; output: string }> {
  const p = Bun.spawn([promtool!, "check", "metrics"], { stdin: new TextEncoder().encode(text), stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, output: (out + err).trim() };
}

export function warnIfNoPromtool(): void {
  if (!promtool) console.warn("\n*** promtool checks SKIPPED: promtool is not installed (apt-get install prometheus) ***\n");
}
