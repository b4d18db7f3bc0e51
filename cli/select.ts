/**
 * Selective deploys (`--only NAME[,NAME] [--with-dependencies] [--with-dependents]`): which services a command
 * acts on, and the Pulumi targets (resource URNs) that select them, the way `pulumi up --target` does
 * (https://www.pulumi.com/docs/iac/guides/basics/targeted-updates/). Pure: a plan in, names and URNs out.
 *
 * A service's resources are its `NixosService` component (`nixmox:index:NixosService`, named after the service),
 * the component's children `<name>-guard|container|ssh|config|secrets|rebuild|health` (components/nixos-service.ts),
 * and the Authentik objects it owns (components/authentik/sso.ts names them `sso-<role>`): its OIDC client or
 * forward-auth application, and for an authentik service its outpost binding and its LDAP/RADIUS outposts
 * (`sso-<authentik>-<type>` and the command that pushes their token, `sso-<authentik>-<type>-token`,
 * components/homelab.ts). An outpost binding is also selected with any forward-auth application it binds,
 * since the binding lists the applications. The generated passwords a selected host receives are targeted too
 * (`generatedSecretTargets`), and so are the shared resources every selected host is built from
 * (`sharedTargets`: the managed CA and the template of each selected service's node), so a service's first
 * targeted deploy, or one on a node no service used before, can create them (pulumi-engine-2 review C3: the engine
 * refuses a targeted resource that depends on an untargeted one it would have to create).
 */
import type { Plan } from "../manifest/plan-types";

export interface SelectOptions {
  /** Service names as given to --only (comma-separated lists already split). */
  only: string[];
  withDependencies?: boolean;
  withDependents?: boolean;
}

/** A bad --only value: names the unknown service and the ones that exist. */
export class SelectionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SelectionError";
  }
}

/** Splits `--only a,b --only c` into names, without empties. */
export function parseOnly(values: string[]): string[] {
  return [...new Set(values.flatMap((value) => value.split(",")).map((name) => name.trim()).filter((name) => name !== ""))];
}

/**
 * The selected services, sorted: the named ones, plus (transitively) what they depend on and/or what depends
 * on them, along the plan's edges (`plan.edges`): hard ones (boot order: depends_on, database, DNS) and soft ones
 * (SSO: a client's Authentik objects need its authentik service), since a selective deploy that leaves out either
 * end of an edge can leave that relation half-applied.
 */
export function selectServices(plan: Pick<Plan, "services" | "disabled" | "edges">, options: SelectOptions): string[] {
  const byName = new Map(plan.services.map((service) => [service.name, service]));
  for (const name of options.only) {
    if (byName.has(name)) continue;
    const why = plan.disabled.includes(name) ? "is disabled in the manifest" : "is not a service of the manifest";
    throw new SelectionError(`--only: "${name}" ${why}; enabled services: ${[...byName.keys()].join(", ")}`);
  }
  const dependencies = new Map<string, string[]>();
  const dependents = new Map<string, string[]>();
  const edges = [...plan.edges, ...plan.services.flatMap((service) => service.dependsOn.map((to) => ({ from: service.name, to })))];
  for (const edge of edges) {
    dependencies.set(edge.from, [...(dependencies.get(edge.from) ?? []), edge.to]);
    dependents.set(edge.to, [...(dependents.get(edge.to) ?? []), edge.from]);
  }
  const selected = new Set(options.only);
  const walk = (next: (name: string) => string[]) => {
    const queue = [...options.only];
    const seen = new Set(queue);
    while (queue.length > 0) {
      for (const neighbour of next(queue.shift()!)) {
        if (seen.has(neighbour)) continue;
        seen.add(neighbour);
        selected.add(neighbour);
        queue.push(neighbour);
      }
    }
  };
  if (options.withDependencies) walk((name) => dependencies.get(name) ?? []);
  if (options.withDependents) walk((name) => dependents.get(name) ?? []);
  return [...selected].sort();
}

/** The Authentik objects of the plan as the selection needs them (components/authentik/plan.ts). */
export interface SsoObject {
  kind: "oidc-app" | "proxy-app" | "outpost-binding";
  role: string;
  /** The client service; for a binding, none. */
  service?: string;
  authentik: string;
  /** For a binding: the roles of the proxy apps it binds. */
  proxyApps?: string[];
}

const componentType = "nixmox:index:NixosService";
/** Child name suffix → resource type, as components/nixos-service.ts registers them. */
const childTypes: Record<string, string> = {
  // The replacement guard the container waits for (components/container-guard.ts).
  guard: "pulumi-nodejs:dynamic/nixmox:ContainerGuard",
  container: "proxmoxve:index/containerLegacy:ContainerLegacy",
  ssh: "pulumi-nodejs:dynamic/nixmox:SshHostKey",
  config: "pulumi-nodejs:dynamic/nixmox:RemoteCommand",
  secrets: "pulumi-nodejs:dynamic/nixmox:RemoteCommand",
  rebuild: "pulumi-nodejs:dynamic/nixmox:RemoteCommand",
  health: "pulumi-nodejs:dynamic/nixmox:HealthCheck",
};
const ssoTypes: Record<SsoObject["kind"], string> = {
  "oidc-app": "pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp",
  "proxy-app": "pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp",
  "outpost-binding": "pulumi-nodejs:dynamic/nixmox:AuthentikOutpostBinding",
};

/** A resource as the targets name it: the qualified type (parent types joined by `$`) and the name. */
export interface TargetResource {
  qualifiedType: string;
  name: string;
}

/** What decides which resources a service has besides its fixed children. */
export interface TargetSources {
  /** The plan's Authentik objects (components/authentik/plan.ts `planAuthentikObjects`). */
  sso: SsoObject[];
  /** The plan's LDAP/RADIUS outposts. @default none */
  outposts?: Array<{ provider: string; type: string }>;
  /** The plan's secrets: a host gets its `<name>-secrets` child only when some are delivered to it. @default none */
  secrets?: Array<{ service: string }>;
  /**
   * Whether a service's resources exist in the stack's state. An outpost binding lists every forward-auth application
   * it binds, so it is targeted only when each of those applications' services is selected or deployed: the engine
   * refuses a targeted binding whose application it would have to create untargeted. @default every service is
   * deployed (refresh and destroy act on what exists)
   */
  deployed?: (service: string) => boolean;
}

/**
 * The resources of the selected services, exactly those the program registers: the engine fails a run whose
 * `--target` names a URN that is neither in the state nor in the program ("Target … could not be found in the
 * stack", pulumi/pulumi pkg/resource/deploy `checkTargets`), so the `secrets` child is listed only for hosts that
 * receive secrets (components/homelab.ts `planDeliveries`).
 */
export function targetResources(services: string[], sources: TargetSources): TargetResource[] {
  const selected = new Set(services);
  const { sso, outposts = [], secrets = [], deployed = () => true } = sources;
  const secretHosts = new Set(secrets.map((secret) => secret.service));
  const resources: TargetResource[] = [];
  for (const name of services) {
    resources.push({ qualifiedType: componentType, name });
    for (const [suffix, type] of Object.entries(childTypes)) {
      if (suffix === "secrets" && !secretHosts.has(name)) continue;
      resources.push({ qualifiedType: `${componentType}$${type}`, name: `${name}-${suffix}` });
    }
  }
  const proxyAppRoles = new Set(sso.filter((object) => object.kind === "proxy-app" && selected.has(object.service!)).map((object) => object.role));
  const proxyAppService = new Map(sso.filter((object) => object.kind === "proxy-app").map((object) => [object.role, object.service!]));
  const available = (role: string) => selected.has(proxyAppService.get(role)!) || deployed(proxyAppService.get(role)!);
  for (const object of sso) {
    const chosen =
      object.kind === "outpost-binding"
        ? (selected.has(object.authentik) || (object.proxyApps ?? []).some((role) => proxyAppRoles.has(role))) && (object.proxyApps ?? []).every(available)
        : selected.has(object.service!);
    if (chosen) resources.push({ qualifiedType: ssoTypes[object.kind], name: `sso-${object.role}` });
  }
  for (const outpost of outposts) {
    if (!selected.has(outpost.provider)) continue;
    const name = `sso-${outpost.provider}-${outpost.type}`;
    resources.push({ qualifiedType: "pulumi-nodejs:dynamic/nixmox:AuthentikOutpost", name }, { qualifiedType: "pulumi-nodejs:dynamic/nixmox:RemoteCommand", name: `${name}-token` });
  }
  return resources;
}

/**
 * The generated secrets (`GeneratedSecret`, `secret-<configService>-<name>`, components/secrets/values.ts) that the
 * selected hosts receive. A targeted run creates nothing outside its targets, so a first deploy of a service needs
 * its new passwords targeted too; only rows the stack does not set are generated (and so registered), which is why
 * they come from the stack's secret check (`checkSecrets` over its Pulumi.<stack>.yaml).
 */
export function generatedSecretTargets(rows: Array<{ configService: string; name: string; status: string; hosts: string[] }>, services: string[]): TargetResource[] {
  const selected = new Set(services);
  return rows
    .filter((row) => row.status === "generated" && row.hosts.some((host) => selected.has(host)))
    .map((row) => ({ qualifiedType: "pulumi-nodejs:dynamic/nixmox:GeneratedSecret", name: `secret-${row.configService}-${row.name}` }));
}

/**
 * The services the selection needs but leaves out (an edge from a selected service to an unselected one, hard or
 * SSO) that are not deployed yet, i.e. whose health gate is not in `deployed` (the URNs of the stack's state):
 * the engine would refuse the run, since a targeted resource cannot depend on an untargeted one it has to create.
 * Sorted, with who needs each.
 */
export function undeployedDependencies(plan: Pick<Plan, "edges">, selected: string[], deployed: Set<string>, healthUrn: (service: string) => string): Array<{ service: string; neededBy: string[] }> {
  const chosen = new Set(selected);
  const missing = new Map<string, Set<string>>();
  for (const edge of plan.edges) {
    if (!chosen.has(edge.from) || chosen.has(edge.to) || deployed.has(healthUrn(edge.to))) continue;
    missing.set(edge.to, (missing.get(edge.to) ?? new Set()).add(edge.from));
  }
  return [...missing.keys()].sort().map((service) => ({ service, neededBy: [...missing.get(service)!].sort() }));
}

/**
 * What every host is built from: the managed CA (components/managed-ca.ts: its component, root and intermediate;
 * every host's rendered configuration carries the root, the proxy signs with the intermediate) and, when the template is downloaded (not `nixmox:templateVolumeId`),
 * the template on each of `nodes` (components/template.ts, `nixos-template-<node>`). Targeting one that already exists
 * and has no change is a no-op. The Proxmox provider needs no target: the engine targets providers implicitly.
 */
export function sharedTargets(nodes: string[], templateDownloaded: boolean): TargetResource[] {
  return [
    { qualifiedType: "nixmox:index:ManagedCa", name: "nixmox-ca" },
    { qualifiedType: "nixmox:index:ManagedCa$pulumi-nodejs:dynamic/nixmox:RootCa", name: "nixmox-ca-root" },
    { qualifiedType: "nixmox:index:ManagedCa$pulumi-nodejs:dynamic/nixmox:IntermediateCa", name: "nixmox-ca-intermediate" },
    ...(templateDownloaded ? [...new Set(nodes)].sort().map((node) => ({ qualifiedType: "pulumi-nodejs:dynamic/nixmox:NodeTemplate", name: `nixos-template-${node}` })) : []),
  ];
}

/**
 * The URN the engine gives a resource: `urn:pulumi:<stack>::<project>::<qualified type>::<name>`, where resources
 * parented to the stack carry no `pulumi:pulumi:Stack$` prefix (pulumi/pulumi pkg/resource/deploy
 * `generateURN` skips the root stack type). `stack` is the bare stack name, without organization or project.
 */
export function targetUrn(stack: string, project: string, resource: TargetResource): string {
  return `urn:pulumi:${stack.split("/").pop()}::${project}::${resource.qualifiedType}::${resource.name}`;
}

/**
 * The same resource's URN under the Node SDK's mock monitor, which keeps the root stack type in the
 * qualified type of top-level resources: strips that prefix so both spellings compare equal.
 */
export function engineQualifiedType(urn: string): string {
  const qualified = urn.split("::")[2] ?? "";
  return qualified.startsWith("pulumi:pulumi:Stack$") ? qualified.slice("pulumi:pulumi:Stack$".length) : qualified;
}
