/**
 * POSIX shell quoting: every value that reaches a remote shell goes through `shellQuote` (or is validated
 * against a strict pattern first). Single quotes keep everything literal; an embedded ' becomes '\''.
 */
export function shellQuote(value: string): string {
  if (value.includes("\0")) throw new Error("a shell argument cannot contain a NUL byte");
  if (/^[A-Za-z0-9_@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replace(/'/g, `'\\''`)}'`;
}

/** Quotes each argument and joins them with spaces. */
export function shellCommand(args: string[]): string {
  return args.map(shellQuote).join(" ");
}
