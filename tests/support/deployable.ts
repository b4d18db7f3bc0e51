/**
 * What "deployable" means for a plan the validator accepted, checked without a host: every host renders, the shipped
 * modules' own assertions pass (run by the real nix-instantiate through the same Nix builders the modules call),
 * and every deploy-time builder runs. Shared by the property test and the fixed-seed fuzz test.
 */
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";
import { renderActivationCommand } from "../../components/activation";
import { planAuthentikObjects } from "../../components/authentik";
import { renderConfigPayload, renderConfigPushCommand } from "../../components/config-push";
import { validateCheck } from "../../components/health/probes";
import { deliveryCommand, deliveryPayload } from "../../components/secrets/delivery";
import type { Plan } from "../../manifest";
import { renderAll, type RenderSources } from "../../render";

/** Shipped modules from nixos/; any manifest module is an empty module (the test is about NixMox's own code). */
export const renderSources: RenderSources = {
  shipped: (relative) => readFileSync(path.join(__dirname, "..", "..", "nixos", relative), "utf8"),
  manifest: () => "{ }\n",
};

/** Evaluates an expression with the real nix-instantiate, from a file: many hosts' data exceed an argument's 128 KiB. */
function evalJson(expression: string): unknown {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-deployable-"));
  try {
    writeFileSync(path.join(dir, "check.nix"), expression);
    const out = execFileSync("nix-instantiate", ["--eval", "--strict", "--json", path.join(dir, "check.nix")], { encoding: "utf8", timeout: 300_000, stdio: ["ignore", "pipe", "pipe"], maxBuffer: 256 * 1024 * 1024 });
    return JSON.parse(out);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const lib = (name: string) => `(import ${path.join(__dirname, "..", "..", "nixos", "lib", `${name}.nix`)})`;

/**
 * The checks the shipped modules assert at rebuild time, run by the real nix-instantiate through the same Nix
 * builders the modules call, over every rendered host.json of a plan: every message a module would stop on.
 */
export function moduleAssertionFailures(hosts: Array<{ service: string; files: Record<string, string> }>): string[] {
  const checks = hosts.map((host) => {
    const data = `(builtins.fromJSON ${JSON.stringify(host.files["host.json"])})`;
    return `(let d = ${data}; h = d.host; k = h.kind; inPorts = p: builtins.elem p h.ports; in
      builtins.filter (m: m != null) ([
        (if builtins.elem h.sshPort h.ports then "${host.service}: ports list the SSH port" else null)
      ] ++ (if k == "caddy" then [
        (if ${lib("caddy")}.conflictingTls d.caddy.routes != [ ] then "${host.service}: routes of one domain disagree on tls" else null)
        (if ${lib("caddy")}.conflictingOutposts d.caddy.routes != [ ] then "${host.service}: forward-auth routes of one domain use different outposts" else null)
        (if !(inPorts 443) && !(builtins.all (r: r.tls == "off") d.caddy.routes) then "${host.service}: 443 not open" else null)
      ] else if k == "dns" then [
        (if ${lib("dns")}.invalidRecords d.dns.records != [ ] then "${host.service}: invalid DNS records" else null)
        (if ${lib("dns")}.conflictingNames d.dns.records != [ ] then "${host.service}: a name with two addresses" else null)
        (if !(inPorts 53) then "${host.service}: 53 not open" else null)
      ] else if k == "postgresql" then [
        (if ${lib("postgresql")}.invalidDatabases d.postgresql.databases != [ ] then "${host.service}: invalid database requests" else null)
        (if !(inPorts d.postgresql.port) then "${host.service}: the PostgreSQL port is not open" else null)
      ] else if k == "media" then [
        (if ${lib("media")}.missingLogDatabases d.media != [ ] then "${host.service}: an *arr database without its log database" else null)
        (if d.media.apps.jellyfin.listen.port != 8096 then "${host.service}: Jellyfin's port is not 8096" else null)
      ] else if k == "monitoring" then [
        (if ${lib("monitoring")}.grafanaCallbackMissing d.monitoring then "${host.service}: Grafana's callback is no redirect URI" else null)
      ] else if k == "mail" then [
        (if !(inPorts 25) || !(inPorts 587) then "${host.service}: SMTP ports not open" else null)
      ] else if k == "openbao" then [
        (if d.openbao.listen.port >= 65535 then "${host.service}: no room for OpenBao's cluster port" else null)
      ] else [ ])
      # Apps of a multi-app kind with a route listen on their own port (media.nix, monitoring.nix).
      ++ (if d ? \${k} && d.\${k} ? apps then map (app: "${host.service}: \${app}'s listen port is not open")
        (builtins.filter (app: d.\${k}.apps.\${app}.publicUrl != null && !(inPorts d.\${k}.apps.\${app}.listen.port)) (builtins.attrNames d.\${k}.apps)) else [ ])
      # Kinds that keep their data in PostgreSQL refuse to start without a database (authentik, forgejo, nextcloud).
      ++ (if builtins.elem k [ "authentik" "forgejo" "nextcloud" ] && d.\${k}.database == null then [ "${host.service}: no database" ] else [ ])
      ++ (if d ? \${k} && d.\${k} ? listen && d.\${k}.listen.port != 0 && !(inPorts d.\${k}.listen.port) then [ "${host.service}: its listen port is not open" ] else [ ])))`;
  });
  return evalJson(`builtins.concatLists [ ${checks.join(" ")} ]`) as string[];
}

/**
 * What validation accepts must go all the way: render every host, pass the shipped modules' own checks (through the
 * real Nix builders) and run every deploy-time builder (activation, health-check validation, secrets and config
 * pushes, Authentik objects). A failure here is a rule missing from manifest/rules.ts (security review L2).
 */
export function checkDeployable(plan: Plan): void {
  const hosts = renderAll(plan, renderSources);
  assert.deepEqual(moduleAssertionFailures(hosts), [], "a shipped module would refuse this host at rebuild time");
  checkDeployBuilders(plan, hosts);
}

/** Every deploy-time builder for the rendered hosts of a plan: Authentik objects, activation, health checks, pushes. */
export function checkDeployBuilders(plan: Plan, hosts: Array<{ service: string; files: Record<string, string>; contentHash: string }>): void {
  planAuthentikObjects(plan);
  for (const service of plan.services) {
    const host = hosts.find((candidate) => candidate.service === service.name)!;
    renderActivationCommand({ service: service.name, configHash: host.contentHash, checks: service.health.checks, timing: service.health, rollback: plan.rollback });
    for (const check of service.health.checks) validateCheck(service.name, check);
    renderConfigPushCommand(service.name, host.contentHash);
    renderConfigPayload(service.name, host.files);
    const secrets = plan.secrets.filter((secret) => secret.service === service.name);
    if (secrets.length > 0) {
      deliveryCommand(secrets, plan.secretsDir);
      deliveryPayload(secrets, Object.fromEntries(secrets.map((secret) => [`${secret.configService}/${secret.name}`, "value"])), plan.secretsDir);
    }
  }
}


/** The Caddyfile of each proxy host.json, as its own builder (nixos/lib/caddy.nix configFiles) writes it, in one evaluation. */
export function caddyfilesOf(hostJsons: string[]): string[] {
  const items = hostJsons.map((text) => `(${lib("caddy")}.configFiles (builtins.fromJSON ${JSON.stringify(text)})).Caddyfile`);
  return evalJson(`[ ${items.join(" ")} ]`) as string[];
}
