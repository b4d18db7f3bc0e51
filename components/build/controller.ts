/**
 * Can this machine (the one that runs Pulumi) build the hosts' systems? `build.on = "controller"` needs a Nix that
 * builds `x86_64-linux` (its `system`, or one of its `extra-platforms`) and knows flakes (Nix 2.4 or later; NixMox
 * passes `--extra-experimental-features 'nix-command flakes'` itself). Asked once when the program starts, so a
 * laptop without Nix, or a Mac without a Linux builder, stops before any resource with what to do instead.
 */

export interface ControllerNix {
  version: string;
  system: string;
  extraPlatforms: string[];
}

/** The problems of a controller Nix for building x86_64-linux systems with flakes; [] when it can. */
export function controllerNixProblems(nix: ControllerNix | null): string[] {
  const instead = 'add a service of kind builder to the manifest (build.on = "builder"), or build on each host (build.on = "target")';
  if (nix === null) return [`build.on = "controller", but this machine has no \`nix\` on PATH; install Nix, or ${instead}`];
  const problems: string[] = [];
  const [major, minor] = nix.version.split(".").map(Number);
  if (!(major > 2 || (major === 2 && minor >= 4))) problems.push(`build.on = "controller", but this machine's Nix is ${nix.version}; flakes need Nix 2.4 or later: upgrade it, or ${instead}`);
  if (nix.system !== "x86_64-linux" && !nix.extraPlatforms.includes("x86_64-linux")) {
    problems.push(
      `build.on = "controller", but this machine's Nix builds ${nix.system} and not x86_64-linux (extra-platforms: ${nix.extraPlatforms.join(" ") || "none"}); ` +
        `configure a Linux remote builder for it (nix.conf builders), or ${instead}`,
    );
  }
  return problems;
}

/** Asks the local `nix` (version, system, extra-platforms); null when there is none. */
export function readControllerNix(): ControllerNix | null {
  const { spawnSync } = require("node:child_process") as typeof import("node:child_process");
  const version = spawnSync("nix", ["--version"], { encoding: "utf8", timeout: 30_000 });
  if (version.status !== 0) return null;
  const config = spawnSync("nix", ["--extra-experimental-features", "nix-command", "show-config", "--json"], { encoding: "utf8", timeout: 30_000 });
  let settings: Record<string, { value: unknown }> = {};
  try {
    settings = JSON.parse(config.stdout) as Record<string, { value: unknown }>;
  } catch {
    settings = {};
  }
  const extra = settings["extra-platforms"]?.value;
  return {
    version: /(\d+\.\d+(\.\d+)?)/.exec(version.stdout)?.[1] ?? "0.0",
    system: String(settings.system?.value ?? "unknown"),
    extraPlatforms: Array.isArray(extra) ? extra.map(String) : typeof extra === "string" ? extra.split(/\s+/).filter(Boolean) : [],
  };
}
