/**
 * `extra_config` checked by Caddy's own Caddyfile parser (security review L6): the schema can only count braces,
 * and a directive Caddy does not know (`import x`, a typo, a bad `redir` code) would otherwise be found by the proxy's
 * rebuild, which then refuses the whole Caddyfile, every route with it.
 *
 * Each route's directives go where nixos/lib/caddy.nix pastes them, inside the route's `handle` block before its
 * `reverse_proxy` (with the same one-line-block expansion), one `http://` site per route, and the file goes through
 * `caddy adapt --validate` (parse, adapt to JSON and provision the modules; nothing listens). A failure is retried
 * route by route, so each refused route is named with Caddy's message. Runs where `caddy` is on PATH (or
 * `NIXMOX_CADDY` names it); elsewhere, or with `NIXMOX_CADDY=off`, nothing is checked and the result says why.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import type { Problem } from "./problems";

export interface ExtraConfigRoute {
  service: string;
  /** Manifest path of the route: `interface.proxy` or `interface.proxy.<name>`. */
  field: string;
  extraConfig: string;
}

export interface ExtraConfigCheck {
  problems: Problem[];
  /** Why nothing was checked (no caddy, …), or null when every route was (or none has extra_config). */
  skipped: string | null;
}

/** nixos/lib/caddy.nix `expandBlocks`: a one-line block (`header { -Server }`) opened up onto lines. */
export function expandBlocks(text: string): string {
  return text.replace(/\{[ \t]+/g, "{\n").replace(/[ \t]+\}/g, "\n}");
}

/** The check file: one site per route, its directives inside `handle` before the proxy, as the host's Caddyfile has them. */
export function checkCaddyfile(routes: ExtraConfigRoute[]): string {
  const indent = (text: string) => text.split("\n").map((line) => (line === "" ? "" : `\t\t${line}`)).join("\n");
  return routes
    .map((route, index) => `http://route-${index}.nixmox-check.invalid {\n\thandle {\n${indent(expandBlocks(route.extraConfig))}\n\t\treverse_proxy 127.0.0.1:9\n\t}\n}\n`)
    .join("\n");
}

interface CaddyRun {
  ok: boolean;
  message: string;
  /** The binary could not be run at all. */
  missing: boolean;
}

function runCaddy(caddy: string, args: string[], dir: string): Promise<CaddyRun> {
  return new Promise((resolve) => {
    // A private HOME and XDG dirs: validation provisions modules, which may create Caddy's data directory.
    const env = { PATH: process.env.PATH ?? "/usr/bin:/bin", HOME: dir, XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir };
    const child = spawn(caddy, args, { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    child.stdout.resume();
    const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
    child.once("error", (error: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const absent = caddy === "caddy" ? "caddy is not on PATH" : `${caddy} (NIXMOX_CADDY) does not exist`;
      resolve({ ok: false, message: error.code === "ENOENT" ? absent : `${caddy} could not be run: ${error.message}`, missing: true });
    });
    child.once("close", (code, signal) => {
      clearTimeout(timer);
      if (code === 0) return resolve({ ok: true, message: "", missing: false });
      const error = stderr.split("\n").find((line) => line.startsWith("Error:")) ?? stderr.trim().split("\n").pop() ?? "";
      resolve({ ok: false, message: signal ? `caddy was stopped (${signal})` : error, missing: false });
    });
  });
}

/** Caddy's message without its file:line prefixes and nesting: "unrecognized directive: foo". */
function caddyReason(message: string): string {
  const parts = message.split("Error during parsing: ");
  return parts[parts.length - 1].replace(/^Error: /, "").replace(/\s+-\s+are you sure your Caddyfile structure.*$/, "").replace(/\S+:\d+ - /g, "").trim();
}

async function adapts(caddy: string, text: string, dir: string, name: string): Promise<CaddyRun> {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return runCaddy(caddy, ["adapt", "--config", file, "--adapter", "caddyfile", "--validate"], dir);
}

/** A whole Caddyfile through `caddy adapt --validate`: null when Caddy takes it, else Caddy's reason. */
export async function caddyRefusal(text: string, caddy = process.env.NIXMOX_CADDY ?? "caddy"): Promise<string | null> {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-caddy-check-"));
  try {
    const run = await adapts(caddy, text, dir, "Caddyfile");
    return run.ok ? null : caddyReason(run.message);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Checks every route's extra_config with the real Caddy; never throws. */
export async function checkExtraConfig(routes: ExtraConfigRoute[], caddy = process.env.NIXMOX_CADDY ?? "caddy"): Promise<ExtraConfigCheck> {
  const withConfig = routes.filter((route) => route.extraConfig.trim() !== "");
  if (withConfig.length === 0) return { problems: [], skipped: null };
  const count = `extra_config of ${withConfig.length === 1 ? "1 route" : `${withConfig.length} routes`}`;
  if (caddy === "" || caddy === "off") return { problems: [], skipped: `${count} was not checked by Caddy (NIXMOX_CADDY=${caddy})` };
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-caddy-check-"));
  try {
    const all = await adapts(caddy, checkCaddyfile(withConfig), dir, "all.caddyfile");
    if (all.ok) return { problems: [], skipped: null };
    if (all.missing) return { problems: [], skipped: `${count} was not checked: ${all.message} (install Caddy, e.g. \`apt install caddy\`, to have its parser check it before a deploy)` };
    const problems: Problem[] = [];
    for (const [index, route] of withConfig.entries()) {
      const alone = await adapts(caddy, checkCaddyfile([route]), dir, `route-${index}.caddyfile`);
      if (!alone.ok) {
        problems.push({
          subject: `service "${route.service}"`,
          field: `${route.field}.extra_config`,
          message: `is refused by Caddy's parser (caddy adapt): ${caddyReason(alone.message)}; the proxy would refuse its whole Caddyfile. Fix the directives (they go inside the route's handle block, before reverse_proxy)`,
        });
      }
    }
    if (problems.length === 0) return { problems: [], skipped: `${count} was not checked: caddy failed without naming a route (${caddyReason(all.message)})` };
    return { problems, skipped: null };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
