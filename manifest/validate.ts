/**
 * Validation at the boundary: the zod schema checks each field (its issues translated in `schema-issues.ts`), then
 * the named cross-service rules of `rules.ts` check the whole. Every problem is collected before anything is
 * reported (see `ManifestError`).
 */
import { boundedData } from "./bounds";
import { ManifestError, type Problem } from "./problems";
import { crossServiceProblems } from "./rules";
import { issueProblems } from "./schema-issues";
import { manifestSchema, type Manifest } from "./schema";

/** Parses and validates a raw manifest (the output of the loader); throws `ManifestError` with every problem. */
export function validateManifest(raw: unknown, source: string): Manifest {
  // Data from elsewhere than the loader (the program's callers, tests) gets the loader's bound too.
  boundedData(source, raw);
  const problems: Problem[] = [];
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...issueProblems(issue, [], raw));
  }
  problems.push(...crossServiceProblems(raw, parsed.success ? parsed.data : undefined));
  if (problems.length > 0 || !parsed.success) throw new ManifestError(source, dedupe(problems));
  return parsed.data;
}

function dedupe(problems: Problem[]): Problem[] {
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${problem.subject}\0${problem.field}\0${problem.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
