/**
 * Stack config → validated settings for the program (namespace `nixmox`, flat keys because Pulumi.yaml
 * `config:` declarations cannot have type object; every key is documented in Pulumi.yaml).
 *
 * `resolveStackSettings` is pure (plain strings in, settings or one ManifestError listing every problem out);
 * `readStackSettings` adds the two secrets, which stay `Output`s and never pass through a plain variable.
 */
import * as path from "node:path";
import type * as pulumi from "@pulumi/pulumi";
import { ManifestError, type Problem } from "../manifest";
import { packageRoot } from "../manifest/package-root";
import { describeValue } from "../manifest/problems";
import { defaultStateVersion, resolveNixpkgsPin, type NixpkgsPin } from "../render";
import { publicKeyOf } from "./deploy-key";
import { formatHostKey, parseHostKey } from "./ssh/host-key";
import { defaultFirstContactWindowSeconds } from "./ssh/first-contact";

/**
 * NixMox's own project folder, the default base of a relative `nixmox:manifest` for callers that name none; the
 * program passes the folder of the Pulumi.yaml it runs for (a homelab project's, when NixMox is its dependency).
 */
export const projectDir = packageRoot;

/** Where the NixOS LXC template comes from: downloaded from a URL, or a volume that already exists. */
export type TemplateSource =
  | {
      kind: "url";
      url: string;
      datastore: string;
      /** The name it is stored under (`<datastore>:vztmpl/<fileName>`); Proxmox needs `.tar.(xz|zst|gz)`. */
      fileName: string;
      /** SHA-256 (hex) Proxmox verifies after the download (required: security review M9). */
      sha256: string;
    }
  | { kind: "volume"; volumeId: string };

/**
 * The default template: nixpkgs' own Proxmox LXC image (nixos/modules/virtualisation/proxmox-lxc.nix) of the
 * release every host is pinned to, as Hydra builds it (nixos/release.nix job `proxmoxLXC`, build product
 * `system-tarball`, an xz tarball from nixos/lib/make-system-tarball.nix). The URL ends in `system-tarball`, so
 * the file name is explicit: Proxmox would otherwise name the file after the URL, which `vztmpl` refuses.
 * Pulumi.yaml declares the same values as its defaults (tests/stack-config.test.ts keeps them equal).
 */
export const defaultTemplate = {
  url: `https://hydra.nixos.org/job/nixos/release-${defaultStateVersion}/nixos.proxmoxLXC.x86_64-linux/latest/download-by-type/file/system-tarball`,
  fileName: `nixos-${defaultStateVersion}-proxmox-lxc-x86_64-linux.tar.xz`,
  datastore: "local",
} as const;

export interface StackSettings {
  /** Absolute path of the manifest. @default `<project>/manifest/service-manifest.nix` */
  manifestPath: string;
  /** Absolute directories a `.nix` manifest may read besides its git repository's tracked files. @default [] */
  manifestAllowPaths: string[];
  proxmoxEndpoint: string;
  /** Skip TLS verification of the Proxmox API. @default false */
  proxmoxInsecure: boolean;
  /** Node of every service without `node` in the manifest. */
  proxmoxNode: string;
  /** Datastore of the containers' root disks. @default "local-lvm" */
  datastore: string;
  /** Bridge of every container's NIC. @default "vmbr0" */
  bridge: string;
  template: TemplateSource;
  nixpkgs: NixpkgsPin;
  /** Activation confirmation over a fresh SSH connection; 0 disables it. @default 60 */
  confirmTimeoutSeconds: number;
  /** Services whose containers may be replaced to apply template/datastore/first-boot-key changes. @default [] */
  allowReplace: string[];
  /** `up` refuses a deploy key missing from `network.ssh_keys.root`, or an example's placeholder key there (false: the override). @default true */
  deployKeyCheck: boolean;
  /**
   * Replace the homelab's root CA when it must change (a `network.domain` edit changes the names it may vouch for);
   * otherwise that change stops the deploy with the steps (components/managed-ca.ts). @default false
   */
  rotateRootCa: boolean;
  /**
   * Host keys read out of band, per service (`nixmox:hostKeys.<service>`, `ssh-ed25519 AAAA…`): the server must
   * present that key; it is never trusted on first use. @default {}
   */
  hostKeys: Record<string, string>;
  /** A new container's key is trusted on first use only this long after Proxmox created it for this stack. @default 900 */
  firstContactWindowSeconds: number;
}

export interface StackSecrets {
  proxmoxApiToken: pulumi.Output<string>;
  /** The key that reaches every host as root (OpenSSH or PEM text). */
  sshPrivateKey: pulumi.Output<string>;
}

/** The plain (non-secret) keys this module reads. */
export const plainKeys = [
  "manifest",
  "manifestAllowPaths",
  "proxmoxEndpoint",
  "proxmoxInsecure",
  "proxmoxNode",
  "datastore",
  "bridge",
  "templateUrl",
  "templateVolumeId",
  "templateDatastore",
  "templateFileName",
  "templateSha256",
  "nixpkgsRev",
  "nixpkgsNarHash",
  "nixpkgsLastModified",
  "confirmTimeoutSeconds",
  "allowReplace",
  "deployKeyCheck",
  "rotateRootCa",
  "firstContactWindowSeconds",
] as const;
export type PlainKey = (typeof plainKeys)[number];

const proxmoxIdPattern = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;

/**
 * Validates the plain keys and the structured `nixmox:hostKeys` (an object, so not declared in Pulumi.yaml); every
 * problem is reported at once, naming the key and the fix.
 */
export function resolveStackSettings(raw: Partial<Record<PlainKey, string>>, baseDir: string = projectDir, structured: { hostKeys?: unknown } = {}): StackSettings {
  const problems: Problem[] = [];
  const problem = (key: string, message: string) => problems.push({ subject: `nixmox:${key}`, field: "", message });
  const text = (key: PlainKey, fallback?: string): string => {
    const value = raw[key];
    return value === undefined || value === "" ? fallback ?? "" : value;
  };
  const required = (key: PlainKey, hint: string): string => {
    const value = text(key);
    if (value === "") problem(key, `is not set; ${hint}`);
    return value;
  };
  const identifier = (key: PlainKey, value: string, what: string) => {
    if (value !== "" && !proxmoxIdPattern.test(value)) problem(key, `must be a Proxmox ${what} name ([A-Za-z0-9._-]), got ${describeValue(value)}`);
  };

  const endpoint = required("proxmoxEndpoint", "run `pulumi config set nixmox:proxmoxEndpoint https://<pve-host>:8006/`");
  if (endpoint !== "" && !/^https:\/\/[^\s/]+(:\d+)?\/?$/.test(endpoint)) {
    problem("proxmoxEndpoint", `must be the API address "https://<host>:8006/", got ${describeValue(endpoint)}`);
  }
  const node = required("proxmoxNode", "run `pulumi config set nixmox:proxmoxNode <node>` (the Proxmox node of services without `node`)");
  identifier("proxmoxNode", node, "node");
  const datastore = text("datastore", "local-lvm");
  identifier("datastore", datastore, "datastore");
  const bridge = text("bridge", "vmbr0");
  identifier("bridge", bridge, "bridge");

  const insecureText = text("proxmoxInsecure", "false");
  if (insecureText !== "true" && insecureText !== "false") problem("proxmoxInsecure", `must be true or false, got ${describeValue(insecureText)}`);

  const deployKeyCheckText = text("deployKeyCheck", "true");
  if (deployKeyCheckText !== "true" && deployKeyCheckText !== "false") problem("deployKeyCheck", `must be true or false, got ${describeValue(deployKeyCheckText)}`);
  const rotateRootCaText = text("rotateRootCa", "false");
  if (rotateRootCaText !== "true" && rotateRootCaText !== "false") problem("rotateRootCa", `must be true or false, got ${describeValue(rotateRootCaText)}`);

  const confirmText = text("confirmTimeoutSeconds", "60");
  const confirmTimeoutSeconds = Number(confirmText);
  if (!/^\d{1,6}$/.test(confirmText)) problem("confirmTimeoutSeconds", `must be a whole number of seconds (0 disables confirmation), got ${describeValue(confirmText)}`);

  // A volume id, when set, wins over the URL: Pulumi.yaml gives the URL a default, so it is always "set".
  let template: TemplateSource;
  const volumeId = text("templateVolumeId");
  const templateDatastore = text("templateDatastore", defaultTemplate.datastore);
  identifier("templateDatastore", templateDatastore, "datastore");
  if (volumeId !== "") {
    if (!/^[A-Za-z0-9._-]+:vztmpl\/\S+$/.test(volumeId)) problem("templateVolumeId", `must look like "local:vztmpl/nixos-….tar.xz", got ${describeValue(volumeId)}`);
    template = { kind: "volume", volumeId };
  } else {
    const url = text("templateUrl", defaultTemplate.url);
    // https only: the template is every container's root filesystem, and a plain-http download can be swapped on
    // the way (security review M9; nixmox:templateSha256 pins its content as well).
    if (!/^https:\/\/\S+$/.test(url)) problem("templateUrl", `must be an https:// URL of a NixOS LXC template, got ${describeValue(url)}`);
    const fileName = text("templateFileName", defaultTemplate.fileName);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]*\.tar\.(xz|zst|gz)$/.test(fileName)) {
      problem("templateFileName", `must be a file name ending in .tar.xz, .tar.zst or .tar.gz (Proxmox's vztmpl formats), got ${describeValue(fileName)}`);
    }
    // Required: the template is every container's root filesystem, and Proxmox verifies the download against it.
    const sha256 = text("templateSha256").toLowerCase();
    if (sha256 === "") {
      problem("templateSha256", `is not set; the template download is verified against it: run \`curl -fL '${url}' | sha256sum\` and \`pulumi config set nixmox:templateSha256 <the 64 hex characters>\`, or upload a template yourself and set nixmox:templateVolumeId`);
    } else if (!/^[0-9a-f]{64}$/.test(sha256)) {
      problem("templateSha256", `must be the template's SHA-256 as 64 hex characters (sha256sum prints it), got ${describeValue(sha256)}`);
    }
    template = { kind: "url", url, datastore: templateDatastore, fileName, sha256 };
  }

  let nixpkgs: NixpkgsPin = resolveNixpkgsPin(undefined);
  const rev = text("nixpkgsRev");
  const narHash = text("nixpkgsNarHash");
  // Without the commit's time in the lock, Nix cannot take the source from a store or cache that has it (a github
  // input lacking lastModified is not "locked with all info", fetchers.cc Input::fetch) and always asks GitHub.
  const lastModifiedText = text("nixpkgsLastModified");
  const lastModified = /^[1-9][0-9]{0,15}$/.test(lastModifiedText) ? Number(lastModifiedText) : null;
  if (lastModifiedText !== "" && lastModified === null) problem("nixpkgsLastModified", `must be the commit's Unix time in seconds (\`nix flake prefetch --json\` prints it as locked.lastModified), got ${describeValue(lastModifiedText)}`);
  if ((rev === "") !== (narHash === "")) {
    problem(rev === "" ? "nixpkgsRev" : "nixpkgsNarHash", "must be set together with the other of nixmox:nixpkgsRev/nixmox:nixpkgsNarHash (`nix flake prefetch github:NixOS/nixpkgs/<rev>` prints both)");
  } else if (rev === "" && lastModifiedText !== "") {
    problem("nixpkgsLastModified", "is the time of nixmox:nixpkgsRev; set it with nixmox:nixpkgsRev and nixmox:nixpkgsNarHash, or unset it");
  } else if (rev !== "") {
    try {
      nixpkgs = resolveNixpkgsPin({ rev, narHash, ...(lastModified === null ? {} : { lastModified }) });
    } catch (error) {
      if (!(error instanceof ManifestError)) throw error;
      for (const item of error.problems) problem(item.field === "rev" ? "nixpkgsRev" : item.field === "lastModified" ? "nixpkgsLastModified" : "nixpkgsNarHash", item.message);
    }
  }

  let allowReplace: string[] = [];
  const allowText = text("allowReplace", "[]");
  try {
    const parsed: unknown = JSON.parse(allowText);
    if (!Array.isArray(parsed) || parsed.some((entry) => typeof entry !== "string")) throw new Error("not a list of strings");
    allowReplace = [...new Set(parsed as string[])].sort();
  } catch {
    problem("allowReplace", `must be a list of service names, e.g. \`pulumi config set --path 'nixmox:allowReplace[0]' caddy\`, got ${describeValue(allowText)}`);
  }

  let manifestAllowPaths: string[] = [];
  const allowPathsText = text("manifestAllowPaths", "[]");
  try {
    const parsed: unknown = JSON.parse(allowPathsText);
    if (!Array.isArray(parsed) || parsed.some((entry) => typeof entry !== "string" || entry === "")) throw new Error("not a list of paths");
    manifestAllowPaths = [...new Set((parsed as string[]).map((entry) => path.resolve(baseDir, entry)))].sort();
  } catch {
    problem("manifestAllowPaths", `must be a list of directories, e.g. \`pulumi config set --path 'nixmox:manifestAllowPaths[0]' ../shared\`, got ${describeValue(allowPathsText)}`);
  }

  const windowText = text("firstContactWindowSeconds", String(defaultFirstContactWindowSeconds));
  if (!/^\d{1,6}$/.test(windowText) || Number(windowText) < 60) {
    problem("firstContactWindowSeconds", `must be a whole number of seconds, at least 60 (a new container's key is trusted on first use only this long after its creation), got ${describeValue(windowText)}`);
  }

  const hostKeys: Record<string, string> = {};
  if (structured.hostKeys !== undefined) {
    if (typeof structured.hostKeys !== "object" || structured.hostKeys === null || Array.isArray(structured.hostKeys)) {
      problem("hostKeys", "must map service names to host keys, e.g. `pulumi config set --path 'nixmox:hostKeys.dns' 'ssh-ed25519 AAAA…'`");
    } else {
      for (const [service, key] of Object.entries(structured.hostKeys as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
        try {
          if (typeof key !== "string") throw new Error(`must be a public key line "ssh-ed25519 AAAA…", got ${describeValue(key)}`);
          const parsed = parseHostKey(key.trim(), `nixmox:hostKeys.${service}`);
          hostKeys[service] = formatHostKey(parsed);
        } catch (error) {
          problem(`hostKeys.${service}`, (error as Error).message.replace(/^nixmox:hostKeys\.\S+ /, ""));
        }
      }
    }
  }

  if (problems.length > 0) throw new ManifestError("stack config", problems);
  return {
    manifestPath: path.resolve(baseDir, text("manifest", "manifest/service-manifest.nix")),
    manifestAllowPaths,
    proxmoxEndpoint: endpoint,
    proxmoxInsecure: insecureText === "true",
    proxmoxNode: node,
    datastore,
    bridge,
    template,
    nixpkgs,
    confirmTimeoutSeconds,
    allowReplace,
    deployKeyCheck: deployKeyCheckText === "true",
    rotateRootCa: rotateRootCaText === "true",
    hostKeys,
    firstContactWindowSeconds: Number(windowText),
  };
}

/** Reads the stack's `nixmox:*` config: validated plain settings plus the secrets as secret Outputs. */
export function readStackSettings(config: pulumi.Config, baseDir: string = projectDir): { settings: StackSettings; secrets: StackSecrets; deployKey: string } {
  const raw: Partial<Record<PlainKey, string>> = {};
  for (const key of plainKeys) {
    const value = config.get(key);
    if (value !== undefined) raw[key] = value;
  }
  const apiToken = config.getSecret("proxmoxApiToken");
  const sshPrivateKey = config.getSecret("sshPrivateKey");
  const problems: Problem[] = [];
  if (apiToken === undefined) {
    problems.push({ subject: "nixmox:proxmoxApiToken", field: "", message: "is not set; run `pulumi config set --secret nixmox:proxmoxApiToken < token.txt` (the token 'user@realm!name=<uuid>' read from a file, not typed on the command line)" });
  }
  if (sshPrivateKey === undefined) {
    problems.push({ subject: "nixmox:sshPrivateKey", field: "", message: "is not set; run `pulumi config set --secret nixmox:sshPrivateKey < ~/.ssh/nixmox_ed25519` (its public half must be in network.ssh_keys.root)" });
  }
  // Checked here, from the plain text and once: a bad key found later, inside an Output, would reject in every
  // resource that uses it (about 1,600 unhandled rejections for the example) instead of one message.
  const privateKeyText = sshPrivateKey === undefined ? undefined : config.get("sshPrivateKey");
  let deployKey = "";
  if (privateKeyText !== undefined) {
    try {
      deployKey = publicKeyOf(privateKeyText);
    } catch (error) {
      problems.push({ subject: "nixmox:sshPrivateKey", field: "", message: (error as Error).message.replace(/^nixmox:sshPrivateKey /, "") });
    }
  }
  let settings: StackSettings | undefined;
  try {
    settings = resolveStackSettings(raw, baseDir, { hostKeys: config.getObject<unknown>("hostKeys") });
  } catch (error) {
    if (!(error instanceof ManifestError)) throw error;
    problems.unshift(...error.problems);
  }
  if (problems.length > 0 || settings === undefined) throw new ManifestError("stack config", problems);
  return { settings, secrets: { proxmoxApiToken: apiToken as pulumi.Output<string>, sshPrivateKey: sshPrivateKey as pulumi.Output<string> }, deployKey };
}

/** Stack config that names services must name services of the plan: a typo in `nixmox:hostKeys` would pin nothing. */
export function checkSettingsAgainstPlan(settings: StackSettings, serviceNames: readonly string[]): void {
  const known = new Set(serviceNames);
  const problems: Problem[] = Object.keys(settings.hostKeys)
    .filter((name) => !known.has(name))
    .map((name) => ({ subject: `nixmox:hostKeys.${name}`, field: "", message: `names no enabled service of the manifest (services: ${[...known].sort().join(", ")}); remove it with \`pulumi config rm --path 'nixmox:hostKeys.${name}'\`` }));
  if (problems.length > 0) throw new ManifestError("stack config", problems);
}
