// Pure: controller-side masking of secret values in health-check output (components/health/runner.ts).
import assert from "node:assert/strict";
import { maskSecrets } from "../components/health/runner";

describe("maskSecrets: verbatim and encoded forms (security review L3)", () => {
  const value = "p@ss:w/rd#1";

  it("masks the value, its base64 (padded and unpadded) and its percent-encoding (upper- and lower-case hex)", () => {
    const b64 = Buffer.from(value).toString("base64");
    assert.equal(b64, "cEBzczp3L3JkIzE=");
    const text = `raw=${value} url=postgresql://app:p%40ss%3Aw%2Frd%231@db/app lower=p%40ss%3aw%2frd%231 b64=${b64} bare=cEBzczp3L3JkIzE end`;
    assert.equal(maskSecrets(text, [value]), "raw=******** url=postgresql://app:********@db/app lower=******** b64=******** bare=******** end");
  });

  it("leaves text alone when no secret form occurs, and never masks with an encoded form shorter than 4 characters", () => {
    assert.equal(maskSecrets("all is fine", [value]), "all is fine");
    // base64 of "xy" is "eHk=", unpadded "eHk" (3 characters): only the padded form is a mask candidate.
    assert.equal(maskSecrets("eHk stays, eHk= goes", ["xy"]), "eHk stays, ******** goes");
  });
});
