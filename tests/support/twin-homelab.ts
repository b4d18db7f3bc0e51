/**
 * A homelab in the twin for the end-to-end tests (tests/twin-homelab*.test.ts): twin/homelab.ts's `startTwinHomelab`
 * with the engine tools/engine builds, on a copy of a manifest turned into JSON (so a test edits it as data), and
 * the helpers the scenarios share: the engine's steps of a preview and of an up, SSH to a host with its pinned key,
 * the state, the stack outputs.
 */
import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { request as httpsRequest } from "node:https";
import * as path from "node:path";
import { loadManifestData } from "../../manifest";
import { startTwinHomelab, type EngineRun, type RunOptions, type TwinHomelab } from "../../twin/homelab";
import { realEngineBin, repoDir } from "./real-engine";
import { twinPrefix } from "./twin-engine";

export interface Step {
  op: string;
  urn: string;
}

export interface Homelab extends TwinHomelab {
  work: string;
  /** The manifest as data (what manifest.json holds); `writeManifest` writes it back. */
  data: Record<string, any>;
  writeManifest(): void;
  /** `node bin/nixmox.js ARGS --project-dir … --stack …` inside the world (the sources, through tsx). */
  nixmox(args: string[], options?: RunOptions): Promise<EngineRun>;
  /** The steps `pulumi preview --json` plans, other than `same`, sorted. */
  preview(args?: string[]): Promise<Step[]>;
  /** `pulumi up --json`: the steps it ran (other than `same`), its summary and the run. */
  up(args?: string[], options?: RunOptions): Promise<{ steps: Step[]; changes: Record<string, number>; run: EngineRun; failed: string[] }>;
  /** `pulumi refresh --json --yes`: the steps it ran (other than `same`). */
  refresh(args?: string[]): Promise<{ steps: Step[]; run: EngineRun }>;
  outputs(): Promise<Record<string, any>>;
  /** The stack's state (`pulumi stack export`): its resources. */
  resources(): Promise<Array<{ urn: string; type: string; id?: string; inputs?: any; outputs?: any; protect?: boolean }>>;
  /** `ssh root@<service ip> command` from the world, with the service's host key as the twin made it. */
  ssh(service: string, command: string): Promise<EngineRun>;
  /** The service's plan entry (ip, vmid) from the manifest data as it is now. */
  service(name: string): { ip: string; vmid: number };
  /** A container's root filesystem on the twin's disk. */
  rootfs(vmid: number): string;
  /** One Proxmox API call with the stack's token (as `pct`/the web UI would make it); resolves with `data`. */
  proxmox(method: "GET" | "POST" | "PUT" | "DELETE", apiPath: string, params?: Record<string, string>): Promise<unknown>;
  /** One Authentik API call to the authentik host's fake, from the world, with its bootstrap token (as an admin would). */
  authentikApi(method: string, apiPath: string): Promise<{ status: number; body: string }>;
}

/** The engine's events of a `--json` run (one JSON object a line; other lines skipped). */
export function engineEvents(stdout: string): any[] {
  return stdout.split("\n").flatMap((line) => {
    if (!line.startsWith("{")) return [];
    try {
      return [JSON.parse(line)];
    } catch {
      return [];
    }
  });
}

/** Steps of `pulumi up --json`/`refresh --json` events: the ones that did something, "<op> <name>" with the type. */
export function stepsOfEvents(stdout: string): { steps: Step[]; summary: Record<string, any> | null; failed: string[] } {
  const steps: Step[] = [];
  const failed: string[] = [];
  let summary: Record<string, any> | null = null;
  for (const event of engineEvents(stdout)) {
    const done = event.resOutputsEvent?.metadata;
    if (done && done.op !== "same" && done.op !== "read") steps.push({ op: done.op, urn: done.urn });
    const failure = event.resOpFailedEvent?.metadata;
    if (failure) failed.push(failure.urn);
    if (event.summaryEvent) summary = event.summaryEvent;
  }
  return { steps: sortSteps(steps), summary, failed: [...new Set(failed)].sort() };
}

export function sortSteps(steps: Step[]): Step[] {
  return [...steps].sort((a, b) => (a.urn === b.urn ? (a.op < b.op ? -1 : 1) : a.urn < b.urn ? -1 : 1));
}

/** "<op> <resource name>" lists, sorted, for readable assertions. */
export function named(steps: Step[]): string[] {
  return steps.map((step) => `${step.op} ${step.urn.split("::").pop()}`).sort();
}

/**
 * A twin with `manifest` (a .nix/.json/.yaml file, copied with the modules folder next to it, as JSON) deployed by
 * nothing yet: the stack is configured, the hosts do not exist.
 */
export async function startHomelab(options: { manifest?: string; stack?: string; config?: Record<string, string> } = {}): Promise<Homelab> {
  if (process.getuid?.() !== 0) throw new Error("the twin tests must run as root (network namespaces and mounts); CI runs them as root");
  const source = options.manifest ?? path.join(repoDir, "manifest", "service-manifest.nix");
  const work = mkdtempSync(path.join(tmpdir(), "nixmox-twin-homelab-"));
  const manifestDir = path.join(work, "manifest");
  mkdirSync(manifestDir);
  if (existsSync(path.join(path.dirname(source), "modules"))) cpSync(path.join(path.dirname(source), "modules"), path.join(manifestDir, "modules"), { recursive: true });
  const data = (await loadManifestData(source)) as Record<string, any>;
  const manifest = path.join(manifestDir, "manifest.json");
  const writeManifest = () => writeFileSync(manifest, `${JSON.stringify(data, null, 2)}\n`);
  writeManifest();
  const homelab = await startTwinHomelab({
    projectRoot: repoDir,
    manifest,
    stateDir: path.join(work, "homelab"),
    prefix: twinPrefix(),
    pulumi: path.join(realEngineBin(), "pulumi"),
    ...(options.stack ? { stack: options.stack } : {}),
    ...(options.config ? { config: options.config } : {}),
  });
  const stackArgs = ["--stack", homelab.stack];
  const service = (name: string) => {
    const entry = data.core_services?.[name] ?? data.services?.[name];
    if (!entry) throw new Error(`no service ${name} in the manifest`);
    return { ip: String(entry.ip), vmid: Number(entry.vmid) };
  };
  const rootfs = (vmid: number) => homelab.twin.cluster.node("pve").container(vmid).host.rootfs;
  const knownHosts = path.join(work, "known_hosts");
  return {
    ...homelab,
    work,
    data,
    writeManifest,
    nixmox: (args, runOptions = {}) =>
      homelab.command([process.execPath, path.join(repoDir, "bin", "nixmox.js"), ...args, "--project-dir", homelab.projectDir, ...stackArgs], { ...runOptions, env: { NIXMOX_FROM_SOURCE: "1", ...(runOptions.env ?? {}) } }),
    preview: async (args = []) => {
      const run = await homelab.pulumi(["preview", "--json", "--non-interactive", ...stackArgs, ...args]);
      const document = JSON.parse(run.stdout) as { steps: Step[] };
      return sortSteps(document.steps.filter((step) => step.op !== "same").map(({ op, urn }) => ({ op, urn })));
    },
    up: async (args = [], runOptions = {}) => {
      const run = await homelab.pulumi(["up", "--yes", "--skip-preview", "--json", "--non-interactive", ...stackArgs, ...args], runOptions);
      const { steps, summary, failed } = stepsOfEvents(run.stdout);
      return { steps, changes: summary?.resourceChanges ?? {}, run, failed };
    },
    refresh: async (args = []) => {
      const run = await homelab.pulumi(["refresh", "--yes", "--skip-preview", "--json", "--non-interactive", ...stackArgs, ...args]);
      return { steps: stepsOfEvents(run.stdout).steps, run };
    },
    outputs: async () => JSON.parse((await homelab.pulumi(["stack", "output", "--json", "--show-secrets", ...stackArgs])).stdout),
    resources: async () => (JSON.parse((await homelab.pulumi(["stack", "export", ...stackArgs])).stdout).deployment.resources ?? []),
    ssh: async (name, command) => {
      const { ip, vmid } = service(name);
      const key = readFileSync(path.join(rootfs(vmid), "etc/ssh/ssh_host_ed25519_key.pub"), "utf8").trim().split(/\s+/).slice(0, 2).join(" ");
      writeFileSync(knownHosts, `${ip} ${key}\n`);
      return homelab.command(["ssh", "-F", "/dev/null", "-i", homelab.deployKey.privateKeyFile, "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", `UserKnownHostsFile=${knownHosts}`, "-o", "ConnectTimeout=5", `root@${ip}`, command], { allowFailure: true });
    },
    service,
    rootfs,
    proxmox: (method, apiPath, params = {}) =>
      new Promise((resolve, reject) => {
        const form = new URLSearchParams(params).toString();
        const query = method === "GET" || method === "DELETE" ? (form ? `?${form}` : "") : "";
        const req = httpsRequest({
          socketPath: homelab.twin.socketPath, path: `/api2/json${apiPath}${query}`, method, ca: homelab.twin.certificate, servername: "localhost",
          headers: { Authorization: `PVEAPIToken=${homelab.apiToken}`, ...(query || method === "GET" || method === "DELETE" ? {} : { "Content-Type": "application/x-www-form-urlencoded" }) },
        }, (response) => {
          let text = "";
          response.on("data", (chunk: Buffer) => (text += chunk.toString()));
          response.on("end", () => (response.statusCode === 200 ? resolve(JSON.parse(text).data) : reject(new Error(`${method} ${apiPath}: ${response.statusCode} ${response.statusMessage} ${text}`))));
        });
        req.on("error", reject);
        req.end(query ? undefined : form);
      }),
    authentikApi: async (method, apiPath) => {
      // As an admin reaches it: through the proxy at its route's domain (the authentik host's firewall lets only the
      // proxy reach its port), trusting the stack's root CA.
      const services = allServices(data);
      const name = Object.keys(services).find((candidate) => (services[candidate].kind ?? candidate) === "authentik")!;
      const domain = String(services[name].interface.proxy.domain);
      const proxy = service(Object.keys(services).find((candidate) => (services[candidate].kind ?? candidate) === "caddy")!);
      const ca = path.join(work, "root-ca.pem");
      const outputs = JSON.parse((await homelab.pulumi(["stack", "output", "--json", ...stackArgs])).stdout);
      writeFileSync(ca, outputs.caRootCertificate);
      const token = readFileSync(path.join(rootfs(service(name).vmid), "var/lib/nixmox/secrets", name, "bootstrap_token"), "utf8").trim();
      // The token goes in a header file, never on a command line.
      const headers = path.join(work, "authentik-headers");
      writeFileSync(headers, `Authorization: Bearer ${token}\n`, { mode: 0o600 });
      const run = await homelab.command(["curl", "-sS", "-X", method, "-H", `@${headers}`, "--cacert", ca, "--resolve", `${domain}:443:${proxy.ip}`, "-w", "\n%{http_code}", `https://${domain}${apiPath}`]);
      const lines = run.stdout.split("\n");
      return { status: Number(lines.pop()), body: lines.join("\n") };
    },
  };
}

/** Every service of the manifest data, core and others. */
function allServices(data: Record<string, any>): Record<string, any> {
  return { ...(data.core_services ?? {}), ...(data.services ?? {}) };
}
