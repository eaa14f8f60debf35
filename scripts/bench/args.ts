// Small helpers the standalone benches share: reading a flag's value and rounding figures for tables.

/** The value after `name` on the command line (`--n 1000`), if the flag is there. */
export function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
}

/** `x` rounded to two decimals, for printed and JSON figures. */
export function round2(x: number): number {
  return Math.round(x * 100) / 100;
}
