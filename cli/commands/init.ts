/**
 * `nixmox init DIR [--name NAME] [--nixmox SPEC]`: scaffolds a homelab project of its own, which depends on NixMox
 * the way Pulumi projects consume component libraries (their program imports the package):
 *
 * - `Pulumi.yaml`: NixMox's own, with its config schema (every `nixmox:*` key and its documentation), defaulting
 *   `nixmox:manifest` to the starter manifest next to it. The Pulumi project keeps the name `nixmox`: Pulumi lets a
 *   project declare typed config keys only in its own namespace ("Configuration key 'nixmox:…' is not namespaced by
 *   the project and should not define a type"), and NixMox's keys are `nixmox:*`. Stacks tell homelabs apart, and a
 *   stack moved over from a NixMox clone keeps its URNs;
 * - `index.ts` (a few lines importing NixMox's program), `tsconfig.json`, `service-manifest.nix` (a small starter
 *   homelab), `.gitignore` and a README (templates/homelab/);
 * - `package.json` depending on NixMox (`--nixmox SPEC`: a git URL, a tarball or a folder; by default this NixMox's
 *   own folder, installed as a copy through `.npmrc`'s `install-links`), the Pulumi SDK and TypeScript of the same
 *   ranges, and Node.js 22 for npx, as NixMox has.
 *
 * Nothing is installed and no existing file is overwritten: a target that already holds any of these files is refused
 * with their names.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import type { Command } from "commander";
import { shellQuote } from "../../components/ssh/quote";
import { packageFile } from "../../manifest/package-root";
import { displayPath, packageRoot } from "../paths";
import { action, exitCodes, print } from "../run";

/** A homelab project's name, for its package.json and README (the Pulumi project is `nixmox`, see above). */
const projectNamePattern = /^[a-z0-9][a-z0-9._-]{0,63}$/;

interface NixmoxPackage {
  version: string;
  dependencies: Record<string, string>;
  devDependencies: Record<string, string>;
  allowScripts?: Record<string, boolean>;
}

/** The homelab's Pulumi.yaml: NixMox's (project `nixmox`, see above), comments kept, with its own manifest as the default. */
export function scaffoldPulumiYaml(name: string): string {
  const { parseDocument } = require("yaml") as typeof import("yaml");
  const document = parseDocument(readFileSync(packageFile("Pulumi.yaml"), "utf8"));
  if (!document.hasIn(["config", "nixmox:manifest", "default"])) throw new Error("NixMox's Pulumi.yaml declares no nixmox:manifest default");
  // The comment at the top belongs to the first key (no blank line after it): NixMox's own, replaced.
  const first = (document.contents as import("yaml").YAMLMap<import("yaml").Scalar, unknown>).items[0];
  first.key.commentBefore =
    " A homelab deployed by NixMox (made by `nixmox init`). `pulumi preview` / `pulumi up -s <stack>` run index.ts, NixMox's\n" +
    " program; `npx nixmox preview --offline` runs the same program under mocks. The config schema below is NixMox's.";
  document.setIn(["description"], `Homelab ${name}: NixOS LXC services on Proxmox VE from service-manifest.nix, deployed by NixMox.`);
  document.setIn(["main"], "index.ts");
  document.setIn(["config", "nixmox:manifest", "default"], "service-manifest.nix");
  return document.toString({ lineWidth: 0 });
}

/** The homelab's package.json: NixMox and what its program needs next to it, at NixMox's own ranges. */
export function scaffoldPackageJson(name: string, nixmoxSpec: string): string {
  const own = JSON.parse(readFileSync(packageFile("package.json"), "utf8")) as NixmoxPackage;
  const manifest = {
    name,
    version: "0.0.0",
    private: true,
    description: `Homelab ${name}, deployed by NixMox`,
    scripts: { nixmox: "nixmox" },
    dependencies: {
      nixmox: nixmoxSpec,
      // One copy of the SDK for the program and NixMox (the engine's language host loads it from this folder).
      "@pulumi/pulumi": own.dependencies["@pulumi/pulumi"],
      // The compiler Pulumi's ts-node uses for index.ts (else its bundled TypeScript 3.8).
      typescript: own.dependencies.typescript,
    },
    // Node.js 22 for npx and npm scripts, as in NixMox itself (@pulumi/pulumi needs it).
    devDependencies: { node: own.devDependencies.node },
    ...(own.allowScripts?.node ? { allowScripts: { node: true } } : {}),
  };
  return `${JSON.stringify(manifest, null, 2)}\n`;
}

/** The default NixMox dependency: this NixMox's folder, when it is a clone rather than an installed copy. */
function defaultSpec(): string | null {
  return packageRoot.split(path.sep).includes("node_modules") ? null : `file:${packageRoot}`;
}

/** File name in the homelab → its text. */
export function scaffoldFiles(name: string, nixmoxSpec: string): Record<string, string> {
  const template = (file: string) => readFileSync(packageFile("templates", "homelab", file), "utf8");
  const files: Record<string, string> = {
    "Pulumi.yaml": scaffoldPulumiYaml(name),
    "package.json": scaffoldPackageJson(name, nixmoxSpec),
    "index.ts": template("index.ts"),
    "tsconfig.json": template("tsconfig.json"),
    "service-manifest.nix": template("service-manifest.nix"),
    "README.md": template("README.md"),
    // npm leaves a package's .gitignore out, so the template is named without the dot.
    ".gitignore": template("gitignore"),
  };
  // A folder dependency is installed as a copy (packed, its prepare script run), never a link into the clone.
  if (nixmoxSpec.startsWith("file:") && !/\.(tgz|tar\.gz)$/.test(nixmoxSpec)) files[".npmrc"] = "install-links=true\n";
  return files;
}

export function register(program: Command): void {
  program
    .command("init")
    .description("Scaffold a homelab project of its own in DIR: Pulumi.yaml with NixMox's config schema, index.ts importing NixMox, a starter service-manifest.nix, package.json, .gitignore and a README.")
    .argument("<dir>", "the new project's folder (created; it must not hold any of these files yet)")
    .option("--name <name>", "the homelab's name in package.json (default: the folder's name; the Pulumi project stays \"nixmox\", whose config keys these are)")
    .option("--nixmox <spec>", "how package.json names NixMox: a git URL (github:<owner>/nixmox#v0.1.0), a tarball from `npm pack` (file:../nixmox-0.1.0.tgz) or a folder (default: this NixMox's folder)")
    .action(action(async (dir: string, flags: { name?: string; nixmox?: string }) => {
      const target = path.resolve(dir);
      const name = flags.name ?? path.basename(target).toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[^a-z0-9]+/, "");
      if (!projectNamePattern.test(name)) {
        process.stderr.write(`nixmox init: name ${JSON.stringify(name)} must be lower-case letters, digits, '.', '_' and '-' (an npm package name); pass --name NAME\n`);
        return exitCodes.usage;
      }
      const spec = flags.nixmox ?? defaultSpec();
      if (spec === null) {
        process.stderr.write("nixmox init: this NixMox is an installed copy, not a clone: pass --nixmox SPEC (a git URL, a tarball or a folder) for the new project's package.json\n");
        return exitCodes.usage;
      }
      const files = scaffoldFiles(name, spec);
      const taken = existsSync(target) ? Object.keys(files).filter((file) => readdirSync(target).includes(file)) : [];
      if (taken.length > 0) {
        process.stderr.write(`nixmox init: ${displayPath(target)} already holds ${taken.join(", ")}; nothing was written (choose an empty folder)\n`);
        return exitCodes.usage;
      }
      mkdirSync(target, { recursive: true });
      for (const [file, text] of Object.entries(files)) writeFileSync(path.join(target, file), text, { flag: "wx" });
      const shown = displayPath(target);
      print([
        `created homelab project "${name}" in ${shown}: ${Object.keys(files).join(", ")}`,
        `NixMox comes from ${spec} (package.json; its README says how to pin a git tag or a tarball instead)`,
        "next:",
        `  cd ${shellQuote(shown)} && npm install`,
        "  npx nixmox validate && npx nixmox plan && npx nixmox preview --offline",
        "  then edit service-manifest.nix, and deploy as its README says",
      ].join("\n"));
      return exitCodes.ok;
    }));
}
