/**
 * `NixosService` (`nixmox:index:NixosService`): one manifest service as one NixOS LXC container, configured,
 * activated and health-gated. Children (all `parent: this`):
 *
 *   `<name>-container`  ContainerLegacy (components/container.ts: data safety, ignoreChanges)
 *   `<name>-ssh`        SshHostKey: waits until SSH runs a command, records the host key
 *   `<name>-config`     RemoteCommand: the rendered flake directory → /etc/nixmox (atomic); a refresh checks
 *                       that the host still holds exactly those files, and the next up pushes them again if not
 *   `<name>-secrets`    RemoteCommand: secret files over stdin (only when the host has secrets)
 *   `<name>-build`      HostBuild: the host's system built once on the builder or the controller and signed
 *                       (only when it does not build itself: components/build, issue 18)
 *   `<name>-copy`       ClosureCopy: that closure, `nix copy`-ed to the host (only with `<name>-build`)
 *   `<name>-rebuild`    RemoteCommand: the activation wrapper (nixos-rebuild switch, or a switch to the copied
 *                       system; checks, rollback)
 *   `<name>-health`     HealthCheck: the startup gate (and confirmation) that dependents wait for; after a
 *                       refresh found another generation, it re-runs the rebuild's activation (drift repair)
 *
 * Order comes from data flow and `dependsOn` only: the rebuild waits for this host's config and secrets and
 * for the health checks of exactly the services this one depends on, so independent services deploy in
 * parallel. Every command pins the recorded host key (`connection.hostKey`, components/ssh/remote-command.ts).
 * Children that live inside the
 * container are `replaceWith` it: a re-created container (same vmid, so the same provider id) gets a new host
 * key recorded, its config and secrets pushed and a rebuild, instead of commands aimed at a stale host key.
 */
import * as proxmoxve from "@muhlba91/pulumi-proxmoxve";
import * as pulumi from "@pulumi/pulumi";
import type { Plan, ServicePlan } from "../manifest/plan-types";
import { firewallKernelModules, parseActivationResult, renderActivationCommand, renderActivationScript } from "./activation";
import { renderConfigCheck, renderConfigPayload, renderConfigPushCommand } from "./config-push";
import { planContainer, serviceNode } from "./container";
import { ContainerGuard } from "./container-guard";
import { HealthCheck } from "./health/health-check";
import { RemoteCommand, type SshTarget } from "./ssh/remote-command";
import { SshHostKey } from "./ssh/ssh-host-key";
import type { StackSettings } from "./stack-config";
import { ClosureCopy } from "./build/closure-copy";
import { HostBuild } from "./build/host-build";
import { trustedKeys, type NixCaches } from "./build/nix-commands";

/** One host's rendered flake directory (render/host.ts `RenderedHost`). */
export interface RenderedHostFiles {
  files: Record<string, string>;
  contentHash: string;
}

/** The secrets push of one host (components/secrets builds both parts). */
export interface HostSecretsDelivery {
  /** The delivery command: script and non-secret metadata only. */
  command: string;
  /** The values, as a secret Output; sent on stdin. */
  payload: pulumi.Input<string>;
  /** The same values one by one (secret): masked in health-check messages and outputs. @default [] */
  maskValues?: pulumi.Input<string>[];
}

/** Where a host's system is built when not on the host itself (components/build). */
export interface HostBuildPlacement {
  buildOn: "builder" | "controller";
  /** The builder service ("" on the controller). */
  builderName: string;
  /** How commands reach the builder (secret); required on a builder. */
  builder?: pulumi.Output<SshTarget>;
  /** The builder's health gate: builds wait for it. */
  builderReady?: pulumi.Resource;
  /** Builds at once where it builds (the builder's cores). */
  slots: number;
  caches: NixCaches;
  signingPublicKey: pulumi.Input<string>;
  /** The stack's signing key (secret). */
  signingSecretKey: pulumi.Input<string>;
}

export interface NixosServiceArgs {
  service: ServicePlan;
  plan: Plan;
  settings: StackSettings;
  /** The rendered flake directory (an output when it depends on the managed CA's root). */
  host: pulumi.Input<RenderedHostFiles>;
  /** `<datastore>:vztmpl/<file>` of the NixOS template on the service's node. */
  templateFileId: pulumi.Input<string>;
  /** The deploy key (secret). */
  privateKey: pulumi.Input<string>;
  /** Its public half, authorized on first boot. */
  deployPublicKey: pulumi.Input<string>;
  /** Health checks of the services this one depends on (`service.dependsOn`, in that order). */
  dependencies: HealthCheck[];
  /**
   * This service's own SSO objects (Authentik application and provider), which wait for its rebuild; the health gate
   * waits for them too, so "healthy" includes "users can log in". A promise, because they are created after the
   * services. @default none
   */
  ssoGate?: Promise<pulumi.Resource[]>;
  /** The host's secrets push. @default none: no `<name>-secrets` child */
  secrets?: HostSecretsDelivery;
  /**
   * Build once, copy closures: this host's system is built on the builder or the controller, copied to the host
   * and switched to; the host evaluates nothing. @default none: nixos-rebuild on the host (build.on = "target")
   */
  build?: HostBuildPlacement;
  /** Give up waiting for SSH on a new container after this long. @default 300 */
  sshTimeoutSeconds?: number;
  /**
   * The Proxmox API token (secret): a new container's host key is trusted on first use only once Proxmox's task
   * list shows this token created it (components/ssh/first-contact.ts). Not needed for a service with
   * `settings.hostKeys`; without either, the first contact is refused.
   */
  proxmoxApiToken?: pulumi.Input<string>;
}

/** How long a rebuild may take before the deploy gives up on the command (the wrapper's own bound is 1800 s). */
const rebuildTimeoutSeconds = 45 * 60;
// An SSH peer that stalls after its banner must not hold a push forever: each push has an overall deadline
// (security review M4). Pushes copy a few files.
const pushTimeoutSeconds = 10 * 60;

/** The health gate waits for the rebuild and, when given, the service's own SSO objects (created later). */
function healthDependsOn(rebuild: pulumi.Resource, ssoGate: Promise<pulumi.Resource[]> | undefined): pulumi.Input<pulumi.Input<pulumi.Resource>[]> {
  if (!ssoGate) return [rebuild];
  return ssoGate.then((sso) => [rebuild, ...sso]);
}

export class NixosService extends pulumi.ComponentResource {
  declare public readonly vmid: pulumi.Output<number>;
  declare public readonly ip: pulumi.Output<string>;
  declare public readonly hostname: pulumi.Output<string>;
  /** Store path of the NixOS generation the rebuild deployed. */
  declare public readonly generation: pulumi.Output<string>;
  declare public readonly healthy: pulumi.Output<boolean>;
  /** The host key recorded on first contact (`ssh-ed25519 AAAA…`), pinned by every later command. */
  declare public readonly hostKey: pulumi.Output<string>;
  /** Resolves (true) once the service passed its health check. */
  declare public readonly ready: pulumi.Output<boolean>;
  /** The gate dependents wait for. */
  declare public readonly health: HealthCheck;
  /** The activation of this host's configuration (SSO objects of its clients wait for it). */
  declare public readonly rebuild: pulumi.CustomResource;
  /** How commands reach this host: root over SSH with the deploy key and the pinned host key (secret). */
  declare public readonly connection: pulumi.Output<SshTarget>;
  /** The system NixMox last built for this host ("" when the host builds itself). */
  declare public readonly builtSystem: pulumi.Output<string>;

  constructor(name: string, args: NixosServiceArgs, opts?: pulumi.ComponentResourceOptions) {
    super("nixmox:index:NixosService", name, {}, opts);
    const { service } = args;
    const privateKey = pulumi.secret(args.privateKey);

    const { container, rebootRevision } = this.createContainer(name, args);
    const pinnedHostKey = args.settings.hostKeys[service.name];
    const sshHostKey = new SshHostKey(`${name}-ssh`, {
      service: service.name,
      host: service.ip,
      port: service.sshPort,
      privateKey,
      containerId: container.id,
      timeoutSeconds: args.sshTimeoutSeconds ?? 300,
      ...(pinnedHostKey === undefined ? {} : { pinnedHostKey }),
      ...(args.proxmoxApiToken === undefined || pinnedHostKey !== undefined ? {} : {
        // A service without a manifest vmid: the one Proxmox assigned when it created the container.
        firstContact: pulumi.all([args.proxmoxApiToken, service.vmid ?? container.vmId]).apply(([apiToken, vmid]) => ({
          endpoint: args.settings.proxmoxEndpoint,
          apiToken,
          insecure: args.settings.proxmoxInsecure,
          node: serviceNode(service, args.settings),
          vmid,
          windowSeconds: args.settings.firstContactWindowSeconds,
        })),
      }),
    }, { parent: this, dependsOn: [container], replaceWith: [container] });
    const connection: pulumi.Output<SshTarget> = pulumi.secret(pulumi.all([privateKey, sshHostKey.hostKey]).apply(([key, hostKey]) => ({
      host: service.ip,
      port: service.sshPort,
      user: "root",
      privateKey: key,
      hostKey,
    })));
    const host = pulumi.output(args.host);
    const config = this.createConfigPush(name, args, host, connection, container);
    const secrets = args.secrets ? this.createSecretsPush(name, service.name, args.secrets, connection, container) : undefined;
    const copy = args.build ? this.createBuildAndCopy(name, service.name, args.build, host, connection, container, config) : undefined;
    const copied = copy ? { system: copy.storePath, trustedPublicKeys: pulumi.output(args.build!.signingPublicKey).apply((key) => trustedKeys(service.name, args.build!.caches, key)) } : undefined;
    const activationOptions = {
      service: service.name,
      checks: service.health.checks,
      timing: service.health,
      confirmTimeoutSeconds: args.settings.confirmTimeoutSeconds,
      rollback: args.plan.rollback,
      // The in-container firewall's netfilter modules come from the Proxmox node (README, Inside the hosts).
      kernelModules: args.plan.network.firewall === "nftables" ? [...firewallKernelModules] : [],
    };
    // The wrapper's stdin carries the deploy public key: after a switch root's home-directory authorized_keys keeps
    // only that key, so keys removed from network.ssh_keys.root stop working (security review M7).
    // A copied system: the wrapper switches to that store path (--system) after checking its signatures.
    const activation = pulumi.all([args.deployPublicKey, host, copied?.system ?? "", copied?.trustedPublicKeys ?? []]).apply(([deployPublicKey, rendered, system, keys]) => ({
      command: renderActivationCommand({ ...activationOptions, configHash: rendered.contentHash, ...(copied ? { system, trustedPublicKeys: keys } : {}) }).command,
      stdin: renderActivationScript({ ...activationOptions, configHash: rendered.contentHash, deployPublicKey }),
    }));
    const rebuild = this.createRebuild(name, service.name, activation, connection, container, [config, ...(secrets ? [secrets] : []), ...(copy ? [copy] : []), ...args.dependencies], args.secrets?.maskValues ?? []);
    // The rebuild's stdout is a secret output (its result may quote masked check output); the generation parsed
    // from it is a store path, public again.
    const generation = pulumi.unsecret(rebuild.stdout.apply((stdout) => parseActivationResult(stdout ?? "")?.generation ?? ""));
    const health = new HealthCheck(`${name}-health`, {
      service: service.name,
      host: service.ip,
      port: service.sshPort,
      privateKey,
      hostKey: sshHostKey.hostKey,
      health: service.health,
      expectedGeneration: generation,
      ...(args.settings.confirmTimeoutSeconds > 0 ? { confirm: host.apply((rendered) => ({ configHash: rendered.contentHash })) } : {}),
      maskValues: args.secrets?.maskValues ?? [],
      rebootRevision,
      // After a refresh found another generation, the next update re-runs this activation (drift repair).
      repair: activation,
    }, { parent: this, dependsOn: healthDependsOn(rebuild, args.ssoGate), replaceWith: [container] });

    this.vmid = service.vmid === null ? container.vmId : pulumi.output(service.vmid);
    this.ip = pulumi.output(service.ip);
    this.hostname = pulumi.output(service.fqdn);
    this.generation = generation;
    this.healthy = health.healthy;
    this.ready = health.healthy.apply((healthy) => healthy === true);
    this.hostKey = sshHostKey.hostKey;
    this.health = health;
    this.rebuild = rebuild;
    this.connection = connection;
    this.builtSystem = copy ? copy.storePath : pulumi.output("");
    this.registerOutputs({ vmid: this.vmid, ip: this.ip, hostname: this.hostname, generation: this.generation, healthy: this.healthy, ready: this.ready, hostKey: this.hostKey });
  }

  private createContainer(name: string, args: NixosServiceArgs): { container: proxmoxve.ContainerLegacy; rebootRevision: string } {
    const planned = planContainer({
      service: args.service,
      plan: args.plan,
      settings: args.settings,
      templateFileId: args.templateFileId,
      deployPublicKey: args.deployPublicKey,
    });
    // A vmid or node change, or a smaller disk, would re-create the container: stopped at preview unless allowed.
    const guard = new ContainerGuard(`${name}-guard`, {
      service: args.service.name,
      vmid: args.service.vmid,
      node: serviceNode(args.service, args.settings),
      diskGiB: args.service.resources.diskGiB,
      allowReplace: args.settings.allowReplace.includes(args.service.name),
      // Before the container is created: its vmid must be free on the cluster (another stack's would be adopted).
      ...(args.proxmoxApiToken === undefined ? {} : {
        proxmox: pulumi.output(args.proxmoxApiToken).apply((apiToken) => ({ endpoint: args.settings.proxmoxEndpoint, apiToken, insecure: args.settings.proxmoxInsecure })),
      }),
    }, { parent: this });
    const container = new proxmoxve.ContainerLegacy(`${name}-container`, planned.args, { parent: this, dependsOn: [guard], ...planned.options });
    return { container, rebootRevision: planned.rebootRevision };
  }

  private createConfigPush(
    name: string,
    args: NixosServiceArgs,
    host: pulumi.Output<RenderedHostFiles>,
    connection: pulumi.Output<SshTarget>,
    container: pulumi.Resource,
  ): RemoteCommand {
    return new RemoteCommand(`${name}-config`, {
      service: args.service.name,
      description: "config push",
      connection,
      command: host.apply((rendered) => renderConfigPushCommand(args.service.name, rendered.contentHash)),
      stdin: host.apply((rendered) => renderConfigPayload(args.service.name, rendered.files)),
      timeoutSeconds: pushTimeoutSeconds,
      // A refresh checks that /etc/nixmox still holds exactly these files; a change there is pushed again.
      check: host.apply((rendered) => renderConfigCheck(args.service.name, rendered.files)),
    }, { parent: this, replaceWith: [container] });
  }

  /**
   * `<name>-build` (after the config push, which keeps the host's state-version, and the builder's health gate) and
   * `<name>-copy` (replaced with the container, so a new container receives the closure). The build is not: the
   * same system serves a re-created host.
   */
  private createBuildAndCopy(
    name: string,
    service: string,
    placement: HostBuildPlacement,
    host: pulumi.Output<RenderedHostFiles>,
    connection: pulumi.Output<SshTarget>,
    container: pulumi.Resource,
    config: pulumi.Resource,
  ): ClosureCopy {
    const where = {
      service,
      buildOn: placement.buildOn,
      builderName: placement.builderName,
      ...(placement.builder === undefined ? {} : { builder: placement.builder }),
    };
    const build = new HostBuild(`${name}-build`, {
      ...where,
      slots: placement.slots,
      host: connection,
      files: host.apply((rendered) => rendered.files),
      contentHash: host.apply((rendered) => rendered.contentHash),
      caches: placement.caches,
      signingPublicKey: placement.signingPublicKey,
      signingSecretKey: placement.signingSecretKey,
    }, { parent: this, dependsOn: [config, ...(placement.builderReady ? [placement.builderReady] : [])] });
    return new ClosureCopy(`${name}-copy`, {
      ...where,
      host: connection,
      storePath: build.storePath,
      trustedPublicKeys: pulumi.output(placement.signingPublicKey).apply((key) => trustedKeys(service, placement.caches, key)),
    }, { parent: this, dependsOn: [build], replaceWith: [container] });
  }

  private createSecretsPush(name: string, service: string, secrets: HostSecretsDelivery, connection: pulumi.Output<SshTarget>, container: pulumi.Resource): RemoteCommand {
    return new RemoteCommand(`${name}-secrets`, {
      service,
      description: "secrets push",
      connection,
      command: secrets.command,
      stdin: pulumi.secret(secrets.payload),
      timeoutSeconds: pushTimeoutSeconds,
      maskValues: secrets.maskValues ?? [],
    }, { parent: this, replaceWith: [container], additionalSecretOutputs: ["stdinSha256", "stdout", "stderr"] });
  }

  private createRebuild(
    name: string,
    service: string,
    activation: pulumi.Output<{ command: string; stdin: string }>,
    connection: pulumi.Output<SshTarget>,
    container: pulumi.Resource,
    dependsOn: pulumi.Resource[],
    maskValues: pulumi.Input<string>[],
  ): RemoteCommand {
    // The content hash is part of the command, so a changed host directory *updates* (re-runs) the rebuild and
    // nothing else does.
    return new RemoteCommand(`${name}-rebuild`, {
      service,
      description: "activation",
      connection,
      command: activation.command,
      stdin: activation.stdin,
      timeoutSeconds: rebuildTimeoutSeconds,
      maskValues,
    }, {
      parent: this,
      dependsOn,
      replaceWith: [container],
      // The wrapper masks secret values (and their base64/URL-encoded forms) in what it prints, but a check's
      // output can carry other encodings: keep the result and the log encrypted in state (security review L3).
      additionalSecretOutputs: ["stdout", "stderr"],
    });
  }
}
