/**
 * `npm run bench:fuzz`: open-ended exploration of the manifest properties (tests/support/manifest-properties.ts)
 * with a new seed each run, where the suite runs fixed seeds (tests/manifest-property.test.ts). It prints the seed
 * first, then per property how many cases ran (and how many mutants validation accepted) and how long it took.
 *
 *   npm run bench:fuzz                      # a random seed, RUNS=2000 cases per property
 *   SEED=-2113275949 RUNS=400 npm run bench:fuzz   # replay a seed
 *
 * A failure prints fast-check's report (seed, path, counterexample) and exits 1. Make it a case of the suite: add the
 * counterexample's mutations to `deployRegressions` (with `pending` naming the issue until its fix lands).
 */
import { manifestProperties } from "../tests/support/manifest-properties";

const seed = process.env.SEED !== undefined ? Number(process.env.SEED) : (Date.now() ^ Math.floor(Math.random() * 0x7fffffff)) | 0;
const runs = Number(process.env.RUNS ?? 2000);
if (!Number.isInteger(seed) || !Number.isInteger(runs) || runs < 1) {
  process.stderr.write("manifest-fuzz: SEED must be an integer and RUNS a positive integer\n");
  process.exit(2);
}

async function main(): Promise<number> {
  process.stdout.write(`seed=${seed} runs=${runs} per property (replay: SEED=${seed} RUNS=${runs} npm run bench:fuzz)\n`);
  let failures = 0;
  for (const property of manifestProperties) {
    const started = process.hrtime.bigint();
    try {
      const report = await property.run({ seed, numRuns: runs });
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      const accepted = report.accepted === undefined ? "" : `, ${report.accepted} accepted by validation (${((100 * report.accepted) / report.runs).toFixed(1)} %)`;
      process.stdout.write(`ok    ${property.name}: ${report.runs} cases${accepted}, ${seconds.toFixed(1)} s\n`);
    } catch (error) {
      failures += 1;
      process.stdout.write(`FAIL  ${property.name}\n${error instanceof Error ? error.message : String(error)}\n`);
    }
  }
  process.stdout.write(`${manifestProperties.length - failures} passed, ${failures} failed (seed=${seed})\n`);
  return failures === 0 ? 0 : 1;
}

main().then((code) => process.exit(code));
