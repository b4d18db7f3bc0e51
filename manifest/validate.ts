/**
 * Validation at the boundary: the zod schema checks each field (its issues translated in `schema-issues.ts`), then
 * the named cross-service rules of `rules.ts` check the whole. Every problem is collected before anything is
 * reported (see `ManifestError`).
 */
import { boundedData } from "./bounds";
import { ManifestError, type Problem } from "./problems";
import type { CheckedServices } from "./resolve";
import { crossServiceCheck } from "./rules";
import { issueProblems } from "./schema-issues";
import { manifestSchema, type Manifest } from "./schema";

/** Parses and validates a raw manifest (the output of the loader); throws `ManifestError` with every problem. */
export function validateManifest(raw: unknown, source: string): Manifest {
  return checkManifest(raw, source).manifest;
}

/**
 * `validateManifest`, also handing over what the rules computed (the services resolved, their address lookup and
 * dependency edges), so that `planManifest` (given it as `resolved`) does not compute it a second time: the loader's
 * path, linear at 10,000 services.
 */
export function checkManifest(raw: unknown, source: string): { manifest: Manifest; resolved: CheckedServices } {
  // Data from elsewhere than the loader (the program's callers, tests) gets the loader's bound too.
  boundedData(source, raw);
  const problems: Problem[] = [];
  const parsed = manifestSchema.safeParse(raw);
  if (!parsed.success) {
    for (const issue of parsed.error.issues) problems.push(...issueProblems(issue, [], raw));
  }
  const cross = crossServiceCheck(raw, parsed.success ? parsed.data : undefined);
  problems.push(...cross.problems);
  if (problems.length > 0 || !parsed.success) throw new ManifestError(source, dedupe(problems));
  return { manifest: parsed.data, resolved: cross.checked };
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
