/**
 * The program under Pulumi mocks: no Proxmox, no Pulumi CLI, no provider plugin. Used by
 * `nixmox preview --offline`, the component tests (through tests/support/pulumi-mocks.ts) and
 * bench/blast-radius.ts.
 *
 * What this proves: the exact resources the program registers, their types, names, parents, `dependsOn`,
 * options and inputs (secret inputs stay secret-wrapped), and that every dynamic resource passes its own
 * provider's `check`, run from the serialized provider as the engine's dynamic-provider plugin runs it.
 * In preview mode (`preview: true`, what `nixmox preview --offline` uses) it is a first deploy's preview: every
 * output the engine would compute is unknown ("[unknown]"), so `check` sees the engine's unknown sentinel.
 * What it does not prove: anything a provider decides (which Proxmox fields force replacement, whether Proxmox
 * accepts the values), the engine's diff, and whether the dynamic providers and commands work on real hosts
 * (those run against a loopback sshd in their own tests). Without preview mode, outputs the engine would
 * compute are fixed stand-ins (see `mockOutputs`).
 */
import { createHash, createPrivateKey, createPublicKey } from "node:crypto";
import * as pulumi from "@pulumi/pulumi";
import type { Plan } from "../manifest/plan-types";
import { stableJson } from "../render/stable-json";

export const offlineProject = "nixmox";
export const offlineStack = "offline";

/**
 * The resource options as the engine keeps them in a step's new state (`pulumi preview --json`): lists in the order
 * the program gave them, URNs in the engine's form. tests/engine-real.test.ts compares them with the real engine's.
 */
export interface ResourceOptionsRecord {
  protect: boolean;
  deleteBeforeReplace: boolean;
  retainOnDelete: boolean;
  ignoreChanges: string[];
  replaceOnChanges: string[];
  replaceWith: string[];
  customTimeouts: { create?: string; update?: string; delete?: string } | null;
  additionalSecretOutputs: string[];
}

/** One registered resource, as the engine would have received it. */
export interface ResourceRecord {
  urn: string;
  type: string;
  name: string;
  /** Parent URN; null for the stack itself. */
  parent: string | null;
  /** The provider's URN (a default provider's as the engine names it); null for components and the stack. */
  provider: string | null;
  /** Direct dependencies (explicit `dependsOn` and property dependencies), sorted URNs. */
  dependsOn: string[];
  /** Dependencies that are not property dependencies (`dependsOn`, `replaceWith`), sorted URNs. */
  explicitDependsOn: string[];
  protect: boolean;
  retainOnDelete: boolean;
  ignoreChanges: string[];
  replaceWith: string[];
  /** The resource options as the engine receives them. */
  options: ResourceOptionsRecord;
  custom: boolean;
  /** Inputs with every secret replaced by "[secret]" and the dynamic provider's serialized code left out. */
  inputs: Record<string, unknown>;
  /** The same inputs with secrets unwrapped (tests only: never print this). */
  plainInputs: Record<string, unknown>;
  /** Dotted paths of inputs that were secret-wrapped. */
  secretPaths: string[];
}

export interface RecordedRun {
  resources: ResourceRecord[];
  /** What the program returned (stack outputs), resolved; secret outputs as "[secret]". */
  outputs: Record<string, unknown>;
  /**
   * Per dynamic resource type, the distinct serialized providers its resources carry (sha256 of the `__provider`
   * text the engine stores): one each when the SDK serialized each provider once and reused the text.
   */
  providerTexts: Record<string, string[]>;
}

export interface RecordOptions {
  /** Stack config, `namespace:key` → string (objects as JSON). */
  config: Record<string, string>;
  /** Keys of `config` that are secrets. */
  secretKeys: string[];
  project?: string;
  stack?: string;
  /** Receives the name of every resource as it registers, also when the program fails later. */
  onRegister?: (name: string) => void;
  /** Run as a preview of a first deploy: computed outputs unknown (`setMocks(…, preview = true)`). @default false */
  preview?: boolean;
}

/** How an unknown value (a preview's not-yet-computed output) is shown. */
export const unknownText = "[unknown]";
const secretSig = pulumi.runtime.specialSecretSig;
const sigKey = pulumi.runtime.specialSigKey;

function isSecretWrapper(value: unknown): value is { value: unknown } {
  return typeof value === "object" && value !== null && (value as Record<string, unknown>)[sigKey] === secretSig;
}

/** Deep copy with secrets replaced by "[secret]" (redacted) or unwrapped (plain), collecting secret paths. */
function walkInputs(value: unknown, path: string, secretPaths: string[], mode: "redacted" | "plain"): unknown {
  if (pulumi.isUnknown(value)) return unknownText;
  if (isSecretWrapper(value)) {
    secretPaths.push(path);
    return mode === "redacted" ? "[secret]" : walkInputs(value.value, path, [], mode);
  }
  if (Array.isArray(value)) return value.map((item, index) => walkInputs(item, `${path}[${index}]`, secretPaths, mode));
  if (value !== null && typeof value === "object") {
    const record = value as Record<string, unknown>;
    if (typeof record[sigKey] === "string") return `[${String(record[sigKey])}]`;
    return Object.fromEntries(
      Object.keys(record)
        .sort()
        .map((key) => [key, walkInputs(record[key], path === "" ? key : `${path}.${key}`, secretPaths, mode)]),
    );
  }
  return value;
}

const fakeHex = (text: string, length = 32) => createHash("sha256").update(text).digest("hex").slice(0, length);

/** 32 characters of Nix's base-32 alphabet (no e, o, t, u), deterministic: a stand-in store path hash. */
function fakeStoreHash(text: string): string {
  const alphabet = "0123456789abcdfghijklmnpqrsvwxyz";
  return [...createHash("sha256").update(text).digest().subarray(0, 32)].map((byte) => alphabet[byte % 32]).join("");
}

/** A stand-in host key per resource name: a syntactically valid ed25519 public key, deterministic. */
export function fakeHostKey(name: string): string {
  const blob = Buffer.concat([lengthPrefixed(Buffer.from("ssh-ed25519")), lengthPrefixed(createHash("sha256").update(`host-key:${name}`).digest())]);
  return `ssh-ed25519 ${blob.toString("base64")}`;
}

/** Outputs the engine would compute, as fixed stand-ins (ids, host keys, the rebuild's result line). */
export function mockOutputs(args: pulumi.runtime.MockResourceArgs): { id: string; state: Record<string, unknown> } {
  const inputs = args.inputs as Record<string, unknown>;
  const id = `${args.name}-id`;
  switch (args.type) {
    case "proxmoxve:index/containerLegacy:ContainerLegacy":
    {
      // The bpg provider's id is the vmid; a re-created container keeps it (hence replaceWith in NixosService).
      // Without one Proxmox assigns the next free id; the stand-in is a fixed number per resource name.
      const vmId = inputs.vmId ?? 100_000 + (parseInt(fakeHex(args.name, 8), 16) % 900_000);
      return { id: String(vmId), state: { ...inputs, vmId } };
    }
    case "pulumi-nodejs:dynamic/nixmox:NodeTemplate":
      return { id: `${String(inputs.node)}/${String(inputs.datastore)}:vztmpl/${String(inputs.fileName)}`, state: { ...inputs, volumeId: `${String(inputs.datastore)}:vztmpl/${String(inputs.fileName)}`, adopted: false } };
    case "pulumi-nodejs:dynamic/nixmox:SshHostKey":
      return { id, state: { ...inputs, hostKey: fakeHostKey(args.name), hostKeyFingerprint: `SHA256:${fakeHex(args.name)}` } };
    case "pulumi-nodejs:dynamic/nixmox:HealthCheck":
      return { id, state: { ...inputs, healthy: true, generation: inputs.expectedGeneration ?? null, failedUnits: [], drift: null } };
    case "pulumi-nodejs:dynamic/nixmox:AuthentikProxyApp":
    case "pulumi-nodejs:dynamic/nixmox:AuthentikOidcApp":
      // Authentik numbers its providers; a stable stand-in lets the outpost binding show which ones it binds.
      return { id, state: { ...inputs, providerPk: parseInt(fakeHex(args.name, 6), 16) } };
    case "pulumi-nodejs:dynamic/nixmox:GeneratedSecret":
      return { id, state: { ...inputs, value: `offline-${fakeHex(args.name, 24)}` } };
    case "pulumi-nodejs:dynamic/nixmox:BuildSigningKey": {
      // A syntactically valid Nix key pair (name:base64 of 64 and 32 bytes), deterministic, signing nothing.
      const half = createHash("sha256").update(`signing-key:${args.name}`).digest();
      return { id, state: { ...inputs, publicKey: `${String(inputs.name)}:${half.toString("base64")}`, secretKey: `${String(inputs.name)}:${Buffer.concat([half, half]).toString("base64")}`, givenSha256: "" } };
    }
    case "pulumi-nodejs:dynamic/nixmox:HostBuild":
      return { id, state: { ...inputs, storePath: `/nix/store/${fakeStoreHash(`${args.name}:${String(inputs.contentHash)}`)}-nixos-system-${String(inputs.service)}` } };
    case "pulumi-nodejs:dynamic/nixmox:ClosureCopy":
      return { id, state: { ...inputs, copiedPaths: 0, copiedBytes: 0 } };
    case "pulumi-nodejs:dynamic/nixmox:RemoteCommand": {
      const service = args.name.replace(/-[a-z]+$/, "");
      const stdout = args.name.endsWith("-rebuild")
        ? `NIXMOX_RESULT ${JSON.stringify({ configHash: null, generation: `/nix/store/${fakeHex(`${args.name}:${String(inputs.command)}`)}-nixos-system-${service}`, previousGeneration: null, reason: null, service, status: "switched" })}\n`
        : "";
      return { id, state: { ...inputs, stdout, stderr: "" } };
    }
    default:
      return { id, state: { ...inputs } };
  }
}

/**
 * A first deploy's preview: the engine returns a new resource's inputs as its outputs and leaves everything
 * else (ids, host keys, command output, generated values) unknown.
 */
export function previewOutputs(args: pulumi.runtime.MockResourceArgs): { id: undefined; state: Record<string, unknown> } {
  return { id: undefined, state: { ...(args.inputs as Record<string, unknown>) } };
}

/** Deep copy of a raw property struct as a provider that does not accept secrets receives it (secrets unwrapped). */
function engineView(value: unknown): unknown {
  if (isSecretWrapper(value)) return engineView(value.value);
  if (Array.isArray(value)) return value.map(engineView);
  if (value !== null && typeof value === "object") return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, engineView(item)]));
  return value;
}

type CheckingProvider = { check?(olds: unknown, news: unknown): Promise<{ failures?: { property: string; reason: string }[] }> };
const loadedProviders = new Map<string, CheckingProvider>();

/**
 * Runs a dynamic resource's `check` the way the engine's dynamic-provider plugin does: the serialized provider
 * loaded with require-from-string(…).handler() (cached per text, @pulumi/pulumi cmd/dynamic-provider/index.js
 * getProvider), called with no olds and the news as the plugin receives them (unknowns as the sentinel string).
 * Returns one line per failure, as the engine reports them.
 */
async function checkDynamicResource(type: string, name: string, raw: Record<string, unknown>): Promise<string[]> {
  const text = raw.__provider;
  if (typeof text !== "string") return [];
  let provider = loadedProviders.get(text);
  if (!provider) {
    const requireFromString = require("require-from-string") as (code: string) => { handler(): CheckingProvider };
    provider = requireFromString(text).handler();
    loadedProviders.set(text, provider);
  }
  if (!provider.check) return [];
  try {
    const result = await provider.check({}, engineView(raw));
    return (result.failures ?? []).map((failure) => `${type} ${name}: ${failure.property}: ${failure.reason}`);
  } catch (error) {
    return [`${type} ${name}: check failed: ${(error as Error)?.message ?? String(error)}`];
  }
}

type MonitorRequest = {
  getType(): string;
  getName(): string;
  getParent(): string;
  getCustom(): boolean;
  getObject(): unknown;
  getProtect(): boolean;
  getRetainondelete(): boolean;
  getDependenciesList(): string[];
  getPropertydependenciesMap(): { forEach(callback: (value: { getUrnsList(): string[] }, key: string) => void): void };
  getIgnorechangesList(): string[];
  getReplaceonchangesList(): string[];
  getReplaceWithList(): string[];
  getProvider(): string;
  getVersion(): string;
  getDeletebeforereplace(): boolean;
  getDeletebeforereplacedefined(): boolean;
  getCustomtimeouts(): { getCreate(): string; getUpdate(): string; getDelete(): string } | undefined;
  getAdditionalsecretoutputsList(): string[];
};

function optionsOf(req: MonitorRequest): ResourceOptionsRecord {
  const timeouts = req.getCustomtimeouts();
  const customTimeouts = timeouts
    ? Object.fromEntries(Object.entries({ create: timeouts.getCreate(), update: timeouts.getUpdate(), delete: timeouts.getDelete() }).filter(([, value]) => value !== ""))
    : {};
  return {
    protect: req.getProtect(),
    deleteBeforeReplace: req.getDeletebeforereplace(),
    retainOnDelete: req.getRetainondelete(),
    ignoreChanges: [...req.getIgnorechangesList()],
    replaceOnChanges: [...req.getReplaceonchangesList()],
    replaceWith: req.getReplaceWithList().map(engineUrn),
    customTimeouts: Object.keys(customTimeouts).length === 0 ? null : customTimeouts,
    additionalSecretOutputs: [...req.getAdditionalsecretoutputsList()],
  };
}

/**
 * A URN as the engine writes it. The SDK's mock monitor qualifies the type of a resource parented to the stack with
 * `pulumi:pulumi:Stack$`; the engine leaves the root stack out of the qualified type (pulumi/pulumi
 * pkg/resource/deploy `generateURN`), which tests/engine-real.test.ts confirms against the real engine.
 */
export function engineUrn(urn: string): string {
  return urn.replace(/^(urn:pulumi:[^:]*::[^:]*::)pulumi:pulumi:Stack\$/, "$1");
}

/**
 * The provider a custom resource runs under, by URN: the explicit one it was given, or the default provider the
 * engine creates for its package (`default`, or `default_<version with underscores>` when the SDK names a version).
 */
function providerUrn(req: MonitorRequest, project: string, stack: string): string | null {
  if (!req.getCustom() || req.getType().startsWith("pulumi:providers:")) return null;
  const reference = req.getProvider();
  if (reference !== "") return engineUrn(reference.slice(0, reference.lastIndexOf("::")));
  const version = req.getVersion();
  const name = version === "" ? "default" : `default_${version.replace(/[.-]/g, "_")}`;
  return `urn:pulumi:${stack}::${project}::pulumi:providers:${req.getType().split(":")[0]}::${name}`;
}

/**
 * Runs `program` under mocks with `config` and returns every registered resource. Also fails on a duplicate
 * URN, which the mock monitor itself accepts silently (pulumi-notes §5.3).
 */
export async function recordProgram(program: () => Promise<unknown>, options: RecordOptions): Promise<RecordedRun> {
  // The SDK records `new Error().stack` for every promise it creates (runtime/debuggable.js, for its leak report)
  // and for every resource's source position; under mocks nobody reads them, and formatting them was the largest
  // cost of a big preview (bench/program-scale.ts). Errors keep their messages, which is all NixMox prints.
  const stackTraceLimit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return await recordProgramRun(program, options);
  } finally {
    Error.stackTraceLimit = stackTraceLimit;
  }
}

async function recordProgramRun(program: () => Promise<unknown>, options: RecordOptions): Promise<RecordedRun> {
  const project = options.project ?? offlineProject;
  const stack = options.stack ?? offlineStack;
  const resources: ResourceRecord[] = [];
  const preview = options.preview ?? false;
  await pulumi.runtime.setMocks({ newResource: preview ? previewOutputs : mockOutputs, call: (args) => args.inputs }, project, stack, preview);
  pulumi.runtime.setAllConfig(options.config, options.secretKeys);
  const monitor = pulumi.runtime.getMonitor() as unknown as { registerResource(req: MonitorRequest, callback: (error: unknown, response: { getUrn(): string } | undefined) => void): void };
  const register = monitor.registerResource.bind(monitor);
  const checkFailures: string[] = [];
  const checks: Promise<void>[] = [];
  const providerTexts: Record<string, string[]> = {};
  monitor.registerResource = (req, callback) => {
    if (req.getType().startsWith("pulumi-nodejs:dynamic")) {
      const raw = (req.getObject() as { toJavaScript(): Record<string, unknown> }).toJavaScript();
      if (typeof raw.__provider === "string") {
        const hash = createHash("sha256").update(raw.__provider).digest("hex");
        const seen = (providerTexts[req.getType()] ??= []);
        if (!seen.includes(hash)) seen.push(hash);
      }
      checks.push(checkDynamicResource(req.getType(), req.getName(), raw).then((failures) => void checkFailures.push(...failures)));
    }
    register(req, (error, response) => {
      if (!error && response) {
        options.onRegister?.(req.getName());
        const secretPaths: string[] = [];
        const deserialized = pulumi.runtime.deserializeProperties(req.getObject() as never) as Record<string, unknown>;
        delete deserialized.__provider;
        const propertyDependencies = new Set<string>();
        req.getPropertydependenciesMap().forEach((value) => value.getUrnsList().forEach((urn) => propertyDependencies.add(engineUrn(urn))));
        const dependsOn = [...new Set(req.getDependenciesList().map(engineUrn))].sort();
        const resourceOptions = optionsOf(req);
        resources.push({
          urn: engineUrn(response.getUrn()),
          type: req.getType(),
          name: req.getName(),
          parent: req.getParent() === "" ? null : engineUrn(req.getParent()),
          provider: providerUrn(req, project, stack),
          dependsOn,
          explicitDependsOn: dependsOn.filter((urn) => !propertyDependencies.has(urn)),
          protect: resourceOptions.protect,
          retainOnDelete: resourceOptions.retainOnDelete,
          ignoreChanges: resourceOptions.ignoreChanges,
          replaceWith: resourceOptions.replaceWith,
          options: resourceOptions,
          custom: req.getCustom(),
          inputs: walkInputs(deserialized, "", secretPaths, "redacted") as Record<string, unknown>,
          plainInputs: walkInputs(deserialized, "", [], "plain") as Record<string, unknown>,
          secretPaths,
        });
      }
      callback(error, response);
    });
  };
  // A failing program (bad manifest, bad stack config) must reach the caller as its own error: thrown inside
  // the stack resource it would also surface as an unhandled rejection with a stack trace.
  let failure: { error: unknown } | null = null;
  // Kept as the program returned it (Outputs inside): the stack's own resolved outputs drop unknown values.
  let returned: unknown = {};
  await pulumi.runtime.runInPulumiStack(async () => {
    try {
      returned = await program();
      return returned as pulumi.Inputs;
    } catch (error) {
      failure = { error };
      return {};
    }
  });
  await (pulumi.runtime as unknown as { waitForRPCs(): Promise<void> }).waitForRPCs();
  await Promise.all(checks);
  if (failure !== null) throw (failure as { error: unknown }).error;
  if (checkFailures.length > 0) throw new Error(`the engine would refuse ${checkFailures.length === 1 ? "this resource" : "these resources"} (dynamic provider check):\n${checkFailures.sort().map((line) => `  - ${line}`).join("\n")}`);
  const seen = new Set<string>();
  for (const resource of resources) {
    if (seen.has(resource.urn)) throw new Error(`the program registers ${resource.urn} twice; child names must be unique`);
    seen.add(resource.urn);
  }
  resources.sort((a, b) => (a.urn < b.urn ? -1 : a.urn > b.urn ? 1 : 0));
  return { resources, outputs: await resolveOutputs(returned ?? {}), providerTexts };
}

async function resolveOutputs(value: unknown): Promise<Record<string, unknown>> {
  const output = pulumi.output(value as pulumi.Input<Record<string, unknown>>);
  if (await pulumi.isSecret(output)) return { value: "[secret]" };
  // `apply` never runs on an unknown value (a preview): read the value with its unknowns and show them.
  const withUnknowns = await (output as unknown as { promise(withUnknowns: boolean): Promise<unknown> }).promise(true);
  return walkInputs(withUnknowns, "", [], "plain") as Record<string, unknown>;
}

/**
 * `--json`: `{ resources: [{ urn, type, name, parent, provider, custom, dependsOn, protect, options, inputs }] }`,
 * sorted by URN, URNs in the engine's form, `dependsOn` sorted.
 */
export function renderPreviewJson(resources: ResourceRecord[]): string {
  return stableJson({
    resources: resources.map((resource) => ({
      urn: resource.urn,
      type: resource.type,
      name: resource.name,
      parent: resource.parent,
      provider: resource.provider,
      custom: resource.custom,
      dependsOn: resource.dependsOn,
      protect: resource.protect,
      options: resource.options,
      inputs: resource.inputs,
    })),
  });
}

/** The resource tree, children sorted by name, with the facts that matter when reading a preview. */
export function renderPreviewTree(resources: ResourceRecord[]): string {
  const children = new Map<string | null, ResourceRecord[]>();
  for (const resource of resources) {
    const siblings = children.get(resource.parent) ?? [];
    siblings.push(resource);
    children.set(resource.parent, siblings);
  }
  const byUrn = new Map(resources.map((resource) => [resource.urn, resource]));
  const lines: string[] = [];
  const visit = (resource: ResourceRecord, prefix: string, last: boolean, root: boolean) => {
    const notes: string[] = [];
    if (resource.protect) notes.push("protected");
    if (resource.retainOnDelete) notes.push("retained on delete");
    // Cross-service order is what a reader checks: dependencies outside this resource's own component.
    const waits = resource.dependsOn.filter((urn) => byUrn.get(urn)?.parent !== resource.parent).map((urn) => byUrn.get(urn)?.name ?? urn);
    if (waits.length > 0) notes.push(`waits for ${waits.join(", ")}`);
    const label = `${resource.type} ${resource.name}${notes.length > 0 ? `  (${notes.join("; ")})` : ""}`;
    lines.push(root ? label : `${prefix}${last ? "└─ " : "├─ "}${label}`);
    const kids = [...(children.get(resource.urn) ?? [])].sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
    const nextPrefix = root ? "" : `${prefix}${last ? "   " : "│  "}`;
    kids.forEach((kid, index) => visit(kid, nextPrefix, index === kids.length - 1, false));
  };
  for (const root of children.get(null) ?? []) visit(root, "", true, true);
  const custom = resources.filter((resource) => resource.custom).length;
  const stacks = resources.filter((resource) => resource.type === "pulumi:pulumi:Stack").length;
  const components = resources.length - custom - stacks;
  lines.push("", `${resources.length} resources: ${custom} custom, ${components} component${components === 1 ? "" : "s"}, ${stacks} stack; nothing was deployed (offline preview under mocks).`);
  return `${lines.join("\n")}\n`;
}

function lengthPrefixed(data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  return Buffer.concat([length, data]);
}

/**
 * A deterministic, throwaway OpenSSH ed25519 private key built from a fixed seed, for the offline preview only:
 * it is authorized nowhere and never leaves the process, but lets the program derive a public key as it
 * does for a real stack. (Built at run time so no key text sits in the repository.)
 */
export function offlinePreviewPrivateKey(): string {
  const seed = createHash("sha256").update("nixmox offline preview: not a real key").digest();
  const pkcs8 = Buffer.concat([Buffer.from("302e020100300506032b657004220420", "hex"), seed]);
  const publicRaw = createPublicKey(createPrivateKey({ key: pkcs8, format: "der", type: "pkcs8" })).export({ format: "der", type: "spki" }).subarray(-32);
  const publicBlob = Buffer.concat([lengthPrefixed(Buffer.from("ssh-ed25519")), lengthPrefixed(publicRaw)]);
  const checkInt = Buffer.from("6e6978ad", "hex");
  let privateSection = Buffer.concat([
    checkInt,
    checkInt,
    lengthPrefixed(Buffer.from("ssh-ed25519")),
    lengthPrefixed(publicRaw),
    lengthPrefixed(Buffer.concat([seed, publicRaw])),
    lengthPrefixed(Buffer.from("nixmox-offline-preview")),
  ]);
  const padding: number[] = [];
  for (let index = 1; (privateSection.length + padding.length) % 8 !== 0; index++) padding.push(index);
  privateSection = Buffer.concat([privateSection, Buffer.from(padding)]);
  const body = Buffer.concat([
    Buffer.from("openssh-key-v1\0"),
    lengthPrefixed(Buffer.from("none")),
    lengthPrefixed(Buffer.from("none")),
    lengthPrefixed(Buffer.alloc(0)),
    Buffer.from([0, 0, 0, 1]),
    lengthPrefixed(publicBlob),
    lengthPrefixed(privateSection),
  ]);
  const base64 = body.toString("base64").replace(/(.{70})/g, "$1\n").trim();
  return `-----BEGIN OPENSSH PRIVATE KEY-----\n${base64}\n-----END OPENSSH PRIVATE KEY-----\n`;
}

/**
 * `nixmox:secrets` for the offline preview: a visible placeholder for every required secret that cannot be
 * generated (the real stack must set it; `nixmox secrets check` lists them), so the tree shows its delivery.
 */
export function offlineSecretPlaceholders(plan: Pick<Plan, "secrets">): Record<string, string> {
  const secrets: Record<string, Record<string, string>> = {};
  for (const secret of plan.secrets) {
    if (!secret.required || secret.generated) continue;
    secrets[secret.configService] ??= {};
    secrets[secret.configService][secret.name] = `offline-placeholder-${secret.configService}-${secret.name}`;
  }
  return Object.keys(secrets).length === 0 ? {} : { "nixmox:secrets": JSON.stringify(secrets) };
}

/**
 * The stack config of the offline preview: clearly fake endpoint, token and template (`.invalid` names,
 * RFC 2606), the throwaway key above, and the given manifest. No stack file or Pulumi CLI is needed.
 */
export function offlineStackConfig(manifestPath: string, overrides: Record<string, string> = {}): { config: Record<string, string>; secretKeys: string[] } {
  return {
    config: {
      "nixmox:manifest": manifestPath,
      "nixmox:proxmoxEndpoint": "https://pve.offline.invalid:8006/",
      "nixmox:proxmoxApiToken": "offline@pve!preview=00000000-0000-0000-0000-000000000000",
      "nixmox:proxmoxNode": "pve",
      "nixmox:templateUrl": "https://templates.offline.invalid/nixos-lxc.tar.xz",
      // The SHA-256 of nothing: the offline preview downloads nothing, but the setting is required.
      "nixmox:templateSha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
      "nixmox:sshPrivateKey": offlinePreviewPrivateKey(),
      // The throwaway key is in no manifest: the warning would be true and useless here.
      "nixmox:deployKeyCheck": "false",
      ...overrides,
    },
    secretKeys: ["nixmox:proxmoxApiToken", "nixmox:sshPrivateKey"],
  };
}
