/**
 * The stage of the program that turns the plan into one `NixosService` per enabled service, and the stack
 * outputs. Services are created in wave order so that every service receives the health checks of exactly the
 * services it depends on (`ServicePlan.dependsOn`: declared and inferred edges, nothing else).
 */
import type * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import * as pulumi from "@pulumi/pulumi";
import { authentikOutpostPort } from "../manifest";
import type { Plan } from "../manifest/plan-types";
import { AuthentikOutpost, createSsoResources, planAuthentikObjects, type AuthentikTunnel, type SsoResources } from "./authentik";
import { renderOutpostTokenCommand } from "./outpost-token";
import { serviceNode } from "./container";
import { NixosService, type HostBuildPlacement, type HostSecretsDelivery, type RenderedHostFiles } from "./nixos-service";
import { deliveryCommand, hostSecretPayload, hostSecrets, secretKey } from "./secrets";
import { formatKnownHostsLine, parseHostKey } from "./ssh";
import { RemoteCommand } from "./ssh/remote-command";
import type { StackSecrets, StackSettings } from "./stack-config";

/**
 * The secrets push of every host that has secrets: the delivery command (no values) and the payload (a secret
 * Output) from components/secrets; a value change re-runs only the hosts that receive that value.
 */
export function planDeliveries(plan: Plan, values: Record<string, pulumi.Output<string>>): Record<string, HostSecretsDelivery> {
  const deliveries: Record<string, HostSecretsDelivery> = {};
  for (const service of plan.services) {
    const secrets = hostSecrets(plan, service.name);
    if (secrets.length === 0) continue;
    const hostValues = [...new Set(secrets.map(secretKey))].sort().flatMap((key) => (values[key] === undefined ? [] : [values[key]]));
    deliveries[service.name] = {
      command: deliveryCommand(secrets, plan.secretsDir),
      payload: hostSecretPayload(secrets, values, plan.secretsDir),
      maskValues: hostValues,
    };
  }
  return deliveries;
}

/**
 * The services whose health gate waits for their own SSO objects (so "healthy" includes "can log in"): every SSO
 * client none of whose providers boots after it. A provider that boots after its client (pgAdmin on the PostgreSQL
 * host that Authentik's database lives on) would close a cycle, so that client's gate does not wait; its SSO
 * objects are still created as soon as both ends are up.
 */
export function ssoGatedClients(plan: Plan): string[] {
  const byName = new Map(plan.services.map((service) => [service.name, service]));
  const bootsAfter = (service: string, target: string, seen = new Set<string>()): boolean => {
    if (seen.has(service)) return false;
    seen.add(service);
    return (byName.get(service)?.dependsOn ?? []).some((dependency) => dependency === target || bootsAfter(dependency, target, seen));
  };
  const clients = new Map<string, Set<string>>();
  for (const client of plan.authClients) clients.set(client.service, (clients.get(client.service) ?? new Set()).add(client.provider));
  return [...clients.keys()].filter((client) => ![...clients.get(client)!].some((provider) => bootsAfter(provider, client))).sort();
}

/** Per gated client, a promise of its SSO objects; `open` resolves them once the objects exist (or with none). */
export interface SsoGates {
  gates: Record<string, Promise<pulumi.Resource[]>>;
  open(resources: SsoResources | null): void;
}

export function createSsoGates(plan: Plan): SsoGates {
  const resolvers = new Map<string, (resources: pulumi.Resource[]) => void>();
  const gates: Record<string, Promise<pulumi.Resource[]>> = {};
  for (const client of ssoGatedClients(plan)) gates[client] = new Promise((resolve) => resolvers.set(client, resolve));
  const objects = planAuthentikObjects(plan);
  return {
    gates,
    open(resources) {
      for (const [client, resolve] of resolvers) {
        const own = objects.flatMap((object): pulumi.Resource[] => {
          if (!resources || object.kind === "outpost-binding" || object.service !== client) return [];
          const resource = object.kind === "oidc-app" ? resources.oidcApps[object.slug] : resources.proxyApps[object.slug];
          return resource ? [resource] : [];
        });
        resolve(own);
      }
    },
  };
}

/**
 * Authentik applications, providers and outpost bindings (components/authentik). Each object waits for both ends:
 * its authentik service's health check and its client's rebuild (an SSO relation never orders the hosts
 * themselves). The API token is each authentik's `bootstrap_token` secret; OIDC client secrets are the clients'
 * secret values, the same ones their hosts receive.
 */
export function createSso(plan: Plan, values: Record<string, pulumi.Output<string>>, services: Record<string, NixosService>): SsoResources | null {
  const providers = [...new Set(plan.authClients.map((client) => client.provider))].sort();
  if (providers.length === 0) return null;
  const valueOf = (service: string, name: string | null): pulumi.Output<string> | undefined => {
    const secret = plan.secrets.find((entry) => entry.service === service && entry.name === name);
    return secret ? values[`${secret.configService}/${secret.name}`] : undefined;
  };
  const clientSecrets: Record<string, pulumi.Input<string>> = {};
  for (const client of plan.authClients) {
    if (client.type !== "oidc" || client.clientSecret === null) continue;
    const value = valueOf(client.service, client.clientSecret);
    if (value !== undefined) clientSecrets[client.slug] = value;
  }
  const token = (authentik: string): pulumi.Input<string> => {
    const value = valueOf(authentik, "bootstrap_token");
    if (value === undefined) throw new Error(`service "${authentik}": SSO needs its API token; set nixmox:secrets.${authentik}.bootstrap_token (or let NixMox generate it)`);
    return value;
  };
  const resources = createSsoResources(plan, {
    token,
    tunnel: (authentik) => authentikTunnel(plan, services, authentik),
    clientSecrets,
    dependsOnFor: (object) => (object.kind === "outpost-binding" ? [] : [services[object.service].rebuild]),
  }, { dependsOn: providers.map((name) => services[name].health) });
  createOutposts(plan, token, valueOf, services);
  return resources;
}

/** SSH to an authentik host with the deploy key and its pinned host key: the path the API calls take (H2). */
export function authentikTunnel(plan: Plan, services: Record<string, NixosService>, authentik: string): pulumi.Output<AuthentikTunnel> {
  const planned = plan.services.find((service) => service.name === authentik)!;
  const service = services[authentik];
  return pulumi.secret(service.connection.apply((connection) => ({ host: planned.ip, port: planned.sshPort, privateKey: connection.privateKey, hostKey: connection.hostKey })));
}

/**
 * The manifest's LDAP and RADIUS outposts: provider, application and outpost in Authentik (after the authentik
 * host is healthy), then the outpost's API token pushed to that host, where the outpost runs.
 */
export function createOutposts(
  plan: Plan,
  token: (authentik: string) => pulumi.Input<string>,
  valueOf: (service: string, name: string | null) => pulumi.Output<string> | undefined,
  services: Record<string, NixosService>,
): Record<string, AuthentikOutpost> {
  const created: Record<string, AuthentikOutpost> = {};
  for (const outpost of plan.outposts) {
    const authentik = plan.services.find((service) => service.name === outpost.provider)!;
    const name = `sso-${outpost.provider}-${outpost.type}`;
    const resource = new AuthentikOutpost(name, {
      url: `http://${authentik.ip}:${authentikOutpostPort}`,
      token: token(outpost.provider),
      tunnel: authentikTunnel(plan, services, outpost.provider),
      service: outpost.provider,
      type: outpost.type,
      slug: `${outpost.provider}-${outpost.type}`,
      baseDn: outpost.type === "ldap" ? outpost.baseDn : null,
      clientNetworks: outpost.type === "radius" ? outpost.clientNetworks : [],
      sharedSecret: outpost.type === "radius" ? valueOf(outpost.provider, outpost.sharedSecret) ?? null : null,
    }, { dependsOn: [services[outpost.provider].health] });
    new RemoteCommand(`${name}-token`, {
      service: outpost.provider,
      description: `${outpost.type} outpost token push`,
      connection: services[outpost.provider].connection,
      command: renderOutpostTokenCommand(outpost.type),
      stdin: pulumi.secret(resource.outpostToken),
      timeoutSeconds: 600,
    }, { dependsOn: [resource], additionalSecretOutputs: ["stdinSha256", "stdout", "stderr"] });
    created[outpost.type] = resource;
  }
  return created;
}

export interface CreateServicesArgs {
  plan: Plan;
  /** Rendered flake directory per service name. */
  hosts: Record<string, pulumi.Input<RenderedHostFiles>>;
  settings: StackSettings;
  secrets: StackSecrets;
  /** `templateFileId` per Proxmox node. */
  templates: Record<string, pulumi.Input<string>>;
  provider: proxmoxve.Provider;
  deployPublicKey: pulumi.Input<string>;
  /** Secrets push per service name (hosts without secrets have none). @default {} */
  deliveries?: Record<string, HostSecretsDelivery>;
  /** Per SSO client whose health gate waits for its own SSO objects (createSsoGates). @default {} */
  ssoGates?: Record<string, Promise<pulumi.Resource[]>>;
  /**
   * The stack's signing key, when some host's system is built once and copied (plan.build, components/build).
   * @default none: every host must build itself
   */
  signingKey?: { publicKey: pulumi.Output<string>; secretKey: pulumi.Output<string> };
  /** Builds at once on the controller (build.on = "controller"). @default 1 */
  controllerSlots?: number;
}

/**
 * The order services are created in: what the builder boots after and the builder first (they build on their own
 * hosts), then every other service by wave, so a host that builds on the builder finds it created.
 */
export function creationOrder(plan: Plan): string[] {
  const inWaves = plan.waves.flatMap((wave) => [...wave].sort());
  const builder = plan.build.mode === "builder" ? plan.build.builder : null;
  if (builder === null) return inWaves;
  const first = new Set<string>([builder]);
  const byName = new Map(plan.services.map((service) => [service.name, service]));
  const visit = (name: string) => {
    for (const dependency of byName.get(name)?.dependsOn ?? []) {
      if (!first.has(dependency)) {
        first.add(dependency);
        visit(dependency);
      }
    }
  };
  visit(builder);
  return [...inWaves.filter((name) => first.has(name)), ...inWaves.filter((name) => !first.has(name))];
}

/** Where `name`'s system is built, as NixosService takes it; undefined when it builds on its own host. */
function buildPlacement(args: CreateServicesArgs, name: string, created: Record<string, NixosService>): HostBuildPlacement | undefined {
  const { plan } = args;
  const place = plan.build.hosts[name];
  if (place === undefined || place === "target") return undefined;
  if (!args.signingKey) throw new Error(`service "${name}": builds ${place === "builder" ? "on the builder" : "on the controller"}, but no signing key was given (index.ts creates it)`);
  const common = { caches: plan.nixCaches, signingPublicKey: args.signingKey.publicKey, signingSecretKey: args.signingKey.secretKey };
  if (place === "controller") return { buildOn: "controller", builderName: "", slots: args.controllerSlots ?? 1, ...common };
  const builderName = plan.build.builder!;
  const builder = created[builderName];
  if (!builder) throw new Error(`service "${name}": builds on "${builderName}", which is not created before it (creationOrder)`);
  const cores = plan.services.find((service) => service.name === builderName)!.resources.cores;
  return { buildOn: "builder", builderName, builder: builder.connection, builderReady: builder.health, slots: cores, ...common };
}

export function createServices(args: CreateServicesArgs): Record<string, NixosService> {
  const { plan, settings } = args;
  const created: Record<string, NixosService> = {};
  {
    for (const name of creationOrder(plan)) {
      const service = plan.services.find((candidate) => candidate.name === name);
      if (!service) continue;
      const build = buildPlacement(args, name, created);
      const host = args.hosts[name];
      if (!host) throw new Error(`service "${name}": no rendered configuration (render/ produced none for it)`);
      const delivery = args.deliveries?.[name];
      created[name] = new NixosService(name, {
        service,
        plan,
        settings,
        host,
        templateFileId: args.templates[serviceNode(service, settings)],
        privateKey: args.secrets.sshPrivateKey,
        proxmoxApiToken: args.secrets.proxmoxApiToken,
        deployPublicKey: args.deployPublicKey,
        dependencies: service.dependsOn.map((dependency) => {
          const gate = created[dependency];
          if (!gate) throw new Error(`service "${name}": depends on "${dependency}", which is not created before it (plan waves out of order)`);
          return gate.health;
        }),
        ...(delivery ? { secrets: delivery } : {}),
        ...(args.ssoGates?.[name] ? { ssoGate: args.ssoGates[name] } : {}),
        ...(build ? { build } : {}),
      }, { providers: [args.provider] });
    }
  }
  return created;
}

export interface ServiceOutputs {
  vmid: pulumi.Output<number>;
  ip: pulumi.Output<string>;
  hostname: pulumi.Output<string>;
  generation: pulumi.Output<string>;
  healthy: pulumi.Output<boolean>;
}

/**
 * Stack outputs: `services.<name>.{vmid, ip, hostname, generation, healthy}`, names sorted, `knownHosts`: the
 * recorded host keys as known_hosts lines, for `pulumi stack output knownHosts > .nixmox/known_hosts` (what
 * `nixmox status` reads by default), and `systems`: per host the system it should run (the last build, or what the
 * host built itself), for `pulumi stack output systems --json > .nixmox/systems.json` (`nixmox status` compares).
 */
export function exportServices(plan: Plan, services: Record<string, NixosService>): { services: Record<string, ServiceOutputs>; knownHosts: pulumi.Output<string>; systems: Record<string, pulumi.Output<string>> } {
  const outputs: Record<string, ServiceOutputs> = {};
  const systems: Record<string, pulumi.Output<string>> = {};
  const lines: pulumi.Output<string>[] = [];
  for (const name of Object.keys(services).sort()) {
    const service = services[name];
    const planned = plan.services.find((candidate) => candidate.name === name)!;
    outputs[name] = { vmid: service.vmid, ip: service.ip, hostname: service.hostname, generation: service.generation, healthy: service.healthy };
    lines.push(service.hostKey.apply((key) => formatKnownHostsLine(planned.ip, planned.sshPort, parseHostKey(key))));
    // What the host should run: the system NixMox last built for it, or (building on the host) what it deployed.
    systems[name] = pulumi.all([service.builtSystem, service.generation]).apply(([built, generation]) => built || generation);
  }
  return { services: outputs, knownHosts: pulumi.all(lines).apply((all) => all.map((line) => `${line}\n`).join("")), systems };
}
