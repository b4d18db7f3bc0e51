/**
 * Manifest problems: every check reports into one list, so a user sees every mistake at once.
 * Format: `service "vaultwarden": interface.proxy.upstream must be "host:port", got "192.168.99.14"`.
 */
import * as path from "node:path";

export interface Problem {
  /** `service "<name>"`, `network`, or `manifest`. */
  subject: string;
  /** Dotted field path inside the subject (`interface.proxy.upstream`, `depends_on[1]`), or "" for the subject itself. */
  field: string;
  /** What is wrong, and the fix where it is obvious. */
  message: string;
}

/** A file's path as messages show it: relative to the working directory when inside it, else absolute. */
export function displayPath(file: string): string {
  const relative = path.relative(process.cwd(), file);
  return relative.startsWith("..") ? file : relative;
}

export function formatProblem(problem: Problem): string {
  const field = problem.field ? `${problem.field} ` : "";
  return terminalText(`${problem.subject}: ${field}${problem.message}`, { newlines: false });
}

/**
 * Text for a terminal with every control character visible instead of obeyed (security review L7): C0 controls
 * (ESC sequences, a carriage return that overwrites the line), DEL, the C1 controls and Unicode's line separators
 * and bidirectional overrides, which can hide or reorder what is shown, become `\x1b` or `\u202e`. Tabs stay; newlines
 * stay unless `newlines` is false (a value that should be one line). Escaping twice gives the same text.
 */
export function terminalText(text: string, options: { newlines?: boolean } = {}): string {
  const keepNewlines = options.newlines ?? true;
  return text.replace(/[\u0000-\u0008\u000a-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g, (char) => {
    if (char === "\n" && keepNewlines) return char;
    const code = char.charCodeAt(0);
    return code <= 0xff ? `\\x${code.toString(16).padStart(2, "0")}` : `\\u${code.toString(16).padStart(4, "0")}`;
  });
}

/** Thrown by the loader and the validator; its message lists every problem, one per line. */
export class ManifestError extends Error {
  readonly problems: Problem[];
  readonly source: string;

  constructor(source: string, problems: Problem[]) {
    const lines = problems.map((problem) => `  - ${formatProblem(problem)}`);
    const count = problems.length === 1 ? "1 problem" : `${problems.length} problems`;
    super(`${terminalText(source, { newlines: false })}: ${count}\n${lines.join("\n")}`);
    this.name = "ManifestError";
    this.problems = problems;
    this.source = source;
  }
}

/** Renders a value for an error message: strings quoted, objects as short JSON, long values cut. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** Joins a path of keys and indexes into `a.b[0].c`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = "";
  for (const key of path) {
    if (typeof key === "number") out += `[${key}]`;
    else out += out ? `.${String(key)}` : String(key);
  }
  return out;
}

/** Levenshtein distance, for "did you mean" suggestions (inputs are short names). */
function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, index) => index);
  for (let i = 1; i <= a.length; i += 1) {
    const current = [i];
    for (let j = 1; j <= b.length; j += 1) {
      const substitution = previous[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1);
      current.push(Math.min(previous[j] + 1, current[j - 1] + 1, substitution));
    }
    previous = current;
  }
  return previous[b.length];
}

/**
 * The closest candidate within a third of the word's length (at least 2 edits), else undefined; of equally close
 * ones, the first in sort order. Linear in the candidates (no sort): a manifest of 10,000 services with many typos
 * asks this once per typo. A candidate whose length alone differs by too much is skipped before the edit distance.
 */
export function closest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = Math.max(2, Math.floor(word.length / 3)) + 1;
  for (const candidate of candidates) {
    if (Math.abs(candidate.length - word.length) > bestDistance) continue;
    const distance = editDistance(word, candidate);
    if (distance < bestDistance || (distance === bestDistance && best !== undefined && candidate < best)) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

export function didYouMean(word: string, candidates: Iterable<string>): string {
  const suggestion = closest(word, candidates);
  return suggestion === undefined ? "" : ` (did you mean "${suggestion}"?)`;
}
