// Real processes, no mocks: the custom modules of a manifest on disk go through the installed nix-instantiate --parse.
import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { stringify } from "yaml";
import { ManifestError, formatProblem, loadPlan } from "../manifest";
import { customAppHomelab, customAppModules, deepClone, withoutBuildWarning, type RawManifest } from "./support/manifests";

interface ModuleCase {
  name: string;
  /** Module files to write over (or, null, to remove from) `customAppModules()`. */
  files?: Record<string, string | null>;
  mutate?: (manifest: RawManifest) => void;
  /** Every problem line, in order; `DIR` stands for the manifest's directory. */
  problems: string[];
}

const mealie = (lines: string[]) => `${lines.join("\n")}\n`;

const moduleCases: ModuleCase[] = [
  {
    name: "fails when the module has a Nix syntax error (a missing ';'), naming file:line:col",
    files: {
      "modules/mealie.nix": mealie([
        "{ config, lib, pkgs, ... }:",
        "let cfg = config.nixmox.custom; in {",
        "  imports = [ ./mealie-tuning.nix ];",
        "  services.mealie = {",
        "    enable = true",
        "    port = cfg.listen.port;",
        "  };",
        "}",
      ]),
    },
    problems: [`service "mealie": nixos_modules[0] "modules/mealie.nix" is not valid Nix (nix-instantiate --parse): DIR/modules/mealie.nix:6:10: syntax error, unexpected '=', expecting ';'`],
  },
  {
    name: "fails when the module uses an undefined variable (a typo of cfg)",
    files: { "modules/mealie.nix": mealie(["{ config, ... }:", "let cfg = config.nixmox.custom; in {", "  services.mealie.port = cfgg.listen.port;", "}"]) },
    problems: [`service "mealie": nixos_modules[0] "modules/mealie.nix" is not valid Nix (nix-instantiate --parse): DIR/modules/mealie.nix:3:26: undefined variable 'cfgg'`],
  },
  {
    name: "fails when the module imports a file that does not exist (imports = [ ./mealie-tuning.nix ])",
    files: { "modules/mealie-tuning.nix": null },
    problems: ['service "mealie": nixos_modules[0] "modules/mealie.nix" names ./mealie-tuning.nix, which does not exist (relative to modules/mealie.nix)'],
  },
  {
    name: "fails when an imported file (import ./lib/db.nix) names one that does not exist, saying which module reached it",
    files: {
      "modules/mealie-tuning.nix": '{ ... }: { environment.etc."mealie.env".text = import ./lib/db.nix; }\n',
      "modules/lib/db.nix": "builtins.readFile ../../data/mealie.env\n",
    },
    problems: ['service "mealie": nixos_modules[0] "modules/lib/db.nix" (reached from "modules/mealie.nix") names ../../data/mealie.env, which does not exist (relative to modules/lib/db.nix)'],
  },
  {
    name: "fails when an imported file has a syntax error, naming it and the module it was reached from",
    files: { "modules/mealie-tuning.nix": '{ ... }: { systemd.services.mealie.serviceConfig.MemoryMax = "1G" }\n' },
    problems: [
      'service "mealie": nixos_modules[0] "modules/mealie-tuning.nix" (reached from "modules/mealie.nix") is not valid Nix (nix-instantiate --parse): ' +
        "DIR/modules/mealie-tuning.nix:1:67: syntax error, unexpected '}', expecting ';'",
    ],
  },
  {
    name: "fails when the module imports a directory without default.nix",
    files: { "modules/mealie.nix": mealie(["{ ... }: {", "  imports = [ ./mealie ];", "}"]), "modules/mealie/tuning.nix": "{ ... }: { }\n" },
    problems: ['service "mealie": nixos_modules[0] "modules/mealie.nix" names ./mealie, which does not exist (relative to modules/mealie.nix)'],
  },
  {
    name: "fails when the module imports a file outside the manifest's directory",
    files: { "modules/mealie.nix": mealie(["{ ... }: {", "  imports = [ ../../shared/mealie.nix ];", "}"]) },
    problems: ['service "mealie": nixos_modules[0] "modules/mealie.nix" names ../../shared/mealie.nix, which is outside the manifest\'s directory; the host\'s flake only holds files inside it'],
  },
  {
    name: "fails when the module itself is missing",
    files: { "modules/mealie.nix": null },
    problems: ['service "mealie": nixos_modules[0] "modules/mealie.nix" does not exist in DIR'],
  },
  {
    name: "fails for every service whose module needs a broken shared file",
    files: {
      "modules/common.nix": "{ ... }: { time.timeZone = \"Europe/Berlin\" }\n",
      "modules/mealie-tuning.nix": "{ ... }: { imports = [ ./common.nix ]; }\n",
      "modules/paperless.nix": "{ ... }: { imports = [ ./common.nix ]; services.paperless.enable = true; }\n",
    },
    mutate: (m) => {
      m.services.paperless = { kind: "custom", ip: "10.42.0.21", vmid: 221, nixos_modules: ["modules/paperless.nix"], interface: { health: { checks: [{ type: "systemd", unit: "paperless-web.service" }] } } };
    },
    problems: [
      'service "mealie": nixos_modules[0] "modules/common.nix" (reached from "modules/mealie.nix") is not valid Nix (nix-instantiate --parse): ' +
        "DIR/modules/common.nix:1:44: syntax error, unexpected '}', expecting ';'",
      'service "paperless": nixos_modules[0] "modules/common.nix" (reached from "modules/paperless.nix") is not valid Nix (nix-instantiate --parse): ' +
        "DIR/modules/common.nix:1:44: syntax error, unexpected '}', expecting ';'",
    ],
  },
  {
    name: "fails with the manifest's own problems and the module's together",
    files: { "modules/mealie-tuning.nix": "{ ... }: { x = ; }\n" },
    mutate: (m) => {
      m.services.mealie.depend_on = ["postgresql"];
    },
    problems: [
      'service "mealie": depend_on is not a known field (did you mean "depends_on"?)',
      'service "mealie": nixos_modules[0] "modules/mealie-tuning.nix" (reached from "modules/mealie.nix") is not valid Nix (nix-instantiate --parse): ' +
        "DIR/modules/mealie-tuning.nix:1:16: syntax error, unexpected ';'",
    ],
  },
];

/** Modules that must pass: what the walk does not follow, and what only looks like a path. */
const acceptedModules: Array<{ name: string; files: Record<string, string | null>; mutate?: (manifest: RawManifest) => void }> = [
  {
    name: "a path built at evaluation time, a search path, an absolute path, and ./ inside strings and comments",
    files: {
      "modules/mealie.nix": mealie([
        "{ config, lib, pkgs, ... }:",
        "{",
        "  # ./commented-out.nix is no import",
        '  imports = [ (./. + "/generated.nix") <nixpkgs/nixos/modules/profiles/minimal.nix> ];',
        '  systemd.services.mealie.preStart = "./configure --prefix=/var/lib/mealie";',
        "  environment.etc.hosts-extra.source = /etc/hosts;",
        "}",
      ]),
    },
  },
  { name: "a directory imported through its default.nix", files: { "modules/mealie.nix": "{ ... }: { imports = [ ./mealie ]; }\n", "modules/mealie/default.nix": "{ ... }: { }\n" } },
  {
    name: "a broken module of a disabled service",
    files: { "modules/paperless.nix": "{ ... }: { x = ; }\n" },
    mutate: (m) => {
      m.services.paperless = { kind: "custom", enable: false, ip: "10.42.0.21", vmid: 221, nixos_modules: ["modules/paperless.nix"] };
    },
  },
];

describe("manifest: custom modules (nixos_modules) are checked with nix-instantiate --parse", function () {
  this.timeout(60_000);
  let dir: string;

  /** Writes the homelab as JSON with its module files (and the case's changes) into a fresh directory. */
  function writeHomelab(files: Record<string, string | null> = {}, mutate?: (manifest: RawManifest) => void, format: "json" | "yaml" = "json"): string {
    const manifest = deepClone(customAppHomelab());
    mutate?.(manifest);
    for (const [relative, text] of Object.entries({ ...customAppModules(), ...files })) {
      if (text === null) continue;
      mkdirSync(path.join(dir, path.dirname(relative)), { recursive: true });
      writeFileSync(path.join(dir, relative), text);
    }
    const file = path.join(dir, `homelab.${format}`);
    writeFileSync(file, format === "json" ? JSON.stringify(manifest, null, 2) : stringify(manifest));
    return file;
  }

  async function problemsOf(file: string): Promise<string[]> {
    try {
      await loadPlan(file);
    } catch (error) {
      if (error instanceof ManifestError) return error.problems.map(formatProblem);
      throw error;
    }
    assert.fail("expected a ManifestError, but the manifest was accepted");
  }

  beforeEach(() => {
    dir = realpathSync(mkdtempSync(path.join(tmpdir(), "nixmox-modules-")));
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it("accepts the homelab with its module and the file it imports", async () => {
    const plan = await loadPlan(writeHomelab());
    assert.deepEqual([plan.notes, withoutBuildWarning(plan.warnings)], [[], []]);
  });

  for (const { name, files, mutate, problems } of moduleCases) {
    it(name, async () => {
      assert.deepEqual(await problemsOf(writeHomelab(files, mutate)), problems.map((line) => line.replaceAll("DIR", dir)));
    });
  }

  for (const { name, files, mutate } of acceptedModules) {
    it(`accepts ${name}`, async () => {
      const plan = await loadPlan(writeHomelab(files, mutate));
      assert.deepEqual(plan.notes, []);
    });
  }

  it("fails when an imported file is a symlink out of the manifest's directory (security review M8)", async () => {
    const outside = realpathSync(mkdtempSync(path.join(tmpdir(), "nixmox-outside-")));
    try {
      writeFileSync(path.join(outside, "key.nix"), "{ }\n");
      const file = writeHomelab({ "modules/mealie-tuning.nix": null });
      symlinkSync(path.join(outside, "key.nix"), path.join(dir, "modules", "mealie-tuning.nix"));
      assert.deepEqual(await problemsOf(file), [
        `service "mealie": nixos_modules[0] "modules/mealie.nix" names ./mealie-tuning.nix: it resolves to ${outside}/key.nix, outside the manifest's directory ${dir}; ` +
          "a module (or a symlink to it) must stay inside that directory",
      ]);
    } finally {
      rmSync(outside, { recursive: true, force: true });
    }
  });

  it("says, as a note, that it could not parse the modules where nix-instantiate is not installed, and still checks that their imports exist", async () => {
    const withoutNix = mkdtempSync(path.join(tmpdir(), "nixmox-no-nix-"));
    const saved = process.env.PATH;
    try {
      // A PATH without nix-instantiate (a .yaml manifest needs no Nix otherwise).
      process.env.PATH = withoutNix;
      const plan = await loadPlan(writeHomelab({ "modules/mealie-tuning.nix": "{ ... }: { x = ; }\n" }, undefined, "yaml"));
      assert.deepEqual(plan.notes, [
        "manifest: the custom modules (nixos_modules) were not parsed: nix-instantiate is not installed, so a Nix syntax error in them would show only on the host. " +
          "Install Nix (Debian/Ubuntu: `sudo apt-get install nix-bin`, elsewhere https://nixos.org/download)",
      ]);
      rmSync(path.join(dir, "modules", "mealie-tuning.nix"));
      assert.deepEqual(await problemsOf(path.join(dir, "homelab.yaml")), [
        'service "mealie": nixos_modules[0] "modules/mealie.nix" names ./mealie-tuning.nix, which does not exist (relative to modules/mealie.nix)',
      ]);
    } finally {
      process.env.PATH = saved;
      rmSync(withoutNix, { recursive: true, force: true });
    }
  });
});
