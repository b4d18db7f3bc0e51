// The real Caddy (Debian's caddy; .ci/run installs it): every route's extra_config goes through `caddy adapt
// --validate` where nixos/lib/caddy.nix pastes it (security review L6). Not proven here: that the hosts' Caddy (the
// pinned nixpkgs' release) parses exactly as the local one does.
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { ManifestError, formatProblem, loadPlan } from "../manifest";
import { checkCaddyfile, checkExtraConfig, expandBlocks } from "../manifest/caddy-check";
import { smallManifest } from "./support/manifests";

const refusal = (reason: string) =>
  `is refused by Caddy's parser (caddy adapt): ${reason}; the proxy would refuse its whole Caddyfile. Fix the directives (they go inside the route's handle block, before reverse_proxy)`;

describe("extra_config checked by the real Caddy (security review L6)", function () {
  this.timeout(60_000);

  it("accepts the examples' directives, a one-line block included (opened up as caddy.nix does)", async () => {
    assert.equal(expandBlocks("header { -Server }"), "header {\n-Server\n}");
    const routes = [
      { service: "guacamole", field: "interface.proxy", extraConfig: "redir / /guacamole/ 302" },
      { service: "media", field: "interface.proxy.jellyfin", extraConfig: "header {\n  X-Content-Type-Options nosniff\n  X-Frame-Options DENY\n}\n" },
      { service: "web", field: "interface.proxy", extraConfig: "header { -Server }" },
    ];
    assert.deepEqual(await checkExtraConfig(routes), { problems: [], skipped: null });
    assert.match(checkCaddyfile(routes.slice(0, 1)), /^http:\/\/route-0\.nixmox-check\.invalid \{\n\thandle \{\n\t\tredir \/ \/guacamole\/ 302\n\t\treverse_proxy 127\.0\.0\.1:9\n\t\}\n\}\n$/);
  });

  it("fails each route Caddy refuses, naming the service, the field and Caddy's reason, and not the good ones beside them", async () => {
    const check = await checkExtraConfig([
      { service: "guacamole", field: "interface.proxy", extraConfig: "redir / /guacamole/ 302" },
      { service: "app", field: "interface.proxy.web", extraConfig: "import x" },
      { service: "blog", field: "interface.proxy", extraConfig: "redir / /x 999" },
      { service: "wiki", field: "interface.proxy", extraConfig: "rewrit /a /b" },
    ]);
    assert.equal(check.skipped, null);
    assert.deepEqual(check.problems.map(formatProblem), [
      `service "app": interface.proxy.web.extra_config ${refusal("File to import not found: x")}`,
      `service "blog": interface.proxy.extra_config ${refusal("Redir code not in the 3xx range or 401: '999'")}`,
      `service "wiki": interface.proxy.extra_config ${refusal("unrecognized directive: rewrit")}`,
    ]);
  });

  it("says it could not check when caddy cannot be run, or NIXMOX_CADDY=off turns it off, and checks nothing without extra_config", async () => {
    const routes = [{ service: "app", field: "interface.proxy", extraConfig: "import x" }];
    assert.deepEqual(await checkExtraConfig(routes, "/nonexistent/caddy"), {
      problems: [],
      skipped: "extra_config of 1 route was not checked: /nonexistent/caddy (NIXMOX_CADDY) does not exist (install Caddy, e.g. `apt install caddy`, to have its parser check it before a deploy)",
    });
    assert.deepEqual(await checkExtraConfig(routes, "off"), { problems: [], skipped: "extra_config of 1 route was not checked by Caddy (NIXMOX_CADDY=off)" });
    assert.deepEqual(await checkExtraConfig([{ service: "app", field: "interface.proxy", extraConfig: "" }], "/nonexistent/caddy"), { problems: [], skipped: null });
  });

  it("refuses the manifest at load (validate, plan and the program), and notes it when Caddy is missing", async () => {
    const dir = mkdtempSync(path.join(tmpdir(), "nixmox-caddy-check-"));
    const saved = process.env.NIXMOX_CADDY;
    try {
      const manifest = smallManifest();
      manifest.services.app.interface.proxy.extra_config = "import snippets/web.caddy";
      const file = path.join(dir, "manifest.json");
      writeFileSync(file, JSON.stringify(manifest));
      await assert.rejects(loadPlan(file), (error: unknown) => {
        assert.ok(error instanceof ManifestError);
        assert.deepEqual(error.problems.map(formatProblem), [`service "app": interface.proxy.extra_config ${refusal("File to import not found: snippets/web.caddy")}`]);
        return true;
      });
      process.env.NIXMOX_CADDY = "/nonexistent/caddy";
      const plan = await loadPlan(file);
      assert.deepEqual(plan.notes, [
        "manifest: extra_config of 1 route was not checked: /nonexistent/caddy (NIXMOX_CADDY) does not exist (install Caddy, e.g. `apt install caddy`, to have its parser check it before a deploy)",
      ]);
    } finally {
      if (saved === undefined) delete process.env.NIXMOX_CADDY;
      else process.env.NIXMOX_CADDY = saved;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("nixmox validate says so when it could not check the example's extra_config", () => {
    const root = path.join(__dirname, "..");
    const result = spawnSync(process.execPath, [path.join(root, "bin", "nixmox.js"), "validate", "manifest/service-manifest.nix"], {
      cwd: root,
      encoding: "utf8",
      timeout: 60_000,
      env: { ...process.env, NIXMOX_CADDY: "/nonexistent/caddy" },
    });
    assert.equal(result.status, 0, result.stderr);
    assert.deepEqual(result.stdout.split("\n").filter((line) => line.startsWith("  note: ")), [
      "  note: manifest: extra_config of 1 route was not checked: /nonexistent/caddy (NIXMOX_CADDY) does not exist (install Caddy, e.g. `apt install caddy`, to have its parser check it before a deploy)",
    ]);
  });
});
