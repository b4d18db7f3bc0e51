// tools/test-deps.sh with stub apt-get, dpkg-query, deb-systemd-helper, id and rc tools on PATH, recording their calls.
// Not proven here: which units Debian's packages really enable (the script's table names them from their postinsts).
import { strict as assert } from "node:assert";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

const script = path.join(__dirname, "..", "tools", "test-deps.sh");

describe("tools/test-deps.sh: the tests' packages, no daemon left enabled", () => {
  let dir: string;
  let bin: string;
  let log: string;
  let policy: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "nixmox-test-deps-"));
    bin = path.join(dir, "bin");
    mkdirSync(bin);
    log = path.join(dir, "calls.log");
    policy = path.join(dir, "policy-rc.d");
    const stub = (name: string, body: string) => {
      writeFileSync(path.join(bin, name), `#!/bin/bash\n${body}\n`);
      chmodSync(path.join(bin, name), 0o755);
    };
    for (const name of ["deb-systemd-helper", "systemctl", "invoke-rc.d", "update-rc.d"]) stub(name, `echo "${name} $*" >> "${log}"`);
    // apt-get records whether starts are refused while it installs.
    stub("apt-get", `echo "apt-get $* (policy-rc.d: $([ -x "${policy}" ] && "${policy}"; echo $?))" >> "${log}"`);
    stub("id", 'echo "${FAKE_UID:-0}"');
    // Only the packages named in $INSTALLED are installed.
    stub("dpkg-query", 'for p in $INSTALLED; do [ "$p" = "${@: -1}" ] && { echo "install ok installed"; exit 0; }; done; exit 1');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const run = (installed: string[], extra: Record<string, string> = {}) =>
    spawnSync("bash", [script], { encoding: "utf8", env: { PATH: `${bin}:/usr/bin:/bin`, INSTALLED: installed.join(" "), NIXMOX_POLICY_RC_D: policy, ...extra } });
  const all = ["openssh-server", "openssh-client", "age", "postgresql", "python3", "caddy", "unbound", "bind9-dnsutils", "openssl", "iproute2", "nftables", "util-linux", "xz-utils"];

  it("installs only the missing packages with service starts refused, then disables the units those packages enable", () => {
    const result = run(all.filter((name) => name !== "caddy" && name !== "unbound"));
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, "test-deps: installed caddy unbound; their services are stopped and disabled\n");
    const calls = readFileSync(log, "utf8").trimEnd().split("\n");
    assert.deepEqual(calls.slice(0, 2), [
      "apt-get update -qq (policy-rc.d: 101)",
      "apt-get install -y -qq --no-install-recommends caddy unbound (policy-rc.d: 101)",
    ]);
    const disabled = calls.filter((call) => call.startsWith("deb-systemd-helper"));
    assert.deepEqual(disabled, ["deb-systemd-helper disable caddy.service", "deb-systemd-helper disable caddy-api.service", "deb-systemd-helper disable unbound.service", "deb-systemd-helper disable unbound-resolvconf.service"]);
    // The policy it wrote for the install is gone afterwards.
    assert.equal(existsSync(policy), false);
  });

  it("leaves installed packages alone, and an existing policy-rc.d in place", () => {
    writeFileSync(policy, "#!/bin/sh\nexit 101\n", { mode: 0o755 });
    const result = run(all);
    assert.equal(result.status, 0, result.stderr);
    assert.equal(result.stdout, "test-deps: every package is installed\n");
    assert.equal(existsSync(log), false, "nothing was called");
    const partial = run(all.filter((name) => name !== "age"));
    assert.equal(partial.status, 0, partial.stderr);
    assert.equal(readFileSync(policy, "utf8"), "#!/bin/sh\nexit 101\n");
    assert.deepEqual(readFileSync(log, "utf8").trimEnd().split("\n").filter((call) => !call.startsWith("apt-get update")), ["apt-get install -y -qq --no-install-recommends age (policy-rc.d: 101)"]);
  });

  it("says to run it as root when a package is missing, exit 2", () => {
    const result = run([], { FAKE_UID: "1000" });
    assert.equal(result.status, 2);
    assert.match(result.stderr, /^test-deps: run as root \(sudo bash tools\/test-deps\.sh\) to install: openssh-server openssh-client age postgresql /);
  });
});
