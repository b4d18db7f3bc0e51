/**
 * The deploy key's public half, derived from `nixmox:sshPrivateKey` so the stack holds one key, not a pair
 * that can drift apart. Proxmox writes it to the container's /root/.ssh/authorized_keys on first boot
 * (`userAccount.keys`), and the core NixOS module keeps sshd reading that file (`authorizedKeysInHomedir`), so
 * NixMox keeps access after every switch; listing it in `network.ssh_keys.root` also makes it part of the
 * NixOS configuration.
 */
import * as pulumi from "@pulumi/pulumi";
import { ManifestError } from "../manifest/problems";

/** `ssh-ed25519 AAAA…` of an unencrypted OpenSSH/PEM private key. Errors never include key material. */
export function publicKeyOf(privateKey: string): string {
  const { utils } = require("ssh2") as typeof import("ssh2");
  const parsed = utils.parseKey(privateKey);
  const key = Array.isArray(parsed) ? parsed[0] : parsed;
  if (key instanceof Error || key === undefined) {
    throw new Error("nixmox:sshPrivateKey is not an unencrypted OpenSSH or PEM private key; generate one with `ssh-keygen -t ed25519 -N '' -f nixmox_ed25519`");
  }
  const blob = key.getPublicSSH();
  return `${key.type} ${blob.toString("base64")}`;
}

/** The public half as a plain (non-secret) Output: a public key is not a secret. */
export function deployPublicKey(privateKey: pulumi.Output<string>): pulumi.Output<string> {
  return pulumi.unsecret(privateKey.apply(publicKeyOf));
}

/**
 * The placeholder admin keys of NixMox's example manifests (manifest/service-manifest.nix, the seed layout, the
 * starter manifest of `nixmox init`): their base64 spells "…example…replace…", so nobody holds their private half.
 */
export const placeholderKeyBlobs: readonly string[] = [
  "AAAAC3NzaC1lZDI1NTE5AAAAIHNpeG1veC1leGFtcGxlLWtleS1yZXBsYWNlLW1l",
  "AAAAC3NzaC1lZDI1NTE5AAAAIHNlZWQtZXhhbXBsZS1hZG1pbi1rZXktcmVwbGFjZQ",
];

/** The key blob (the base64 after the type) of an authorized_keys line. */
function blobOf(line: string): string | undefined {
  return line.trim().split(/\s+/)[1];
}

/**
 * What is wrong with the manifest's root keys for this deploy key, as `network.ssh_keys.root` problems: the deploy
 * key is not listed (after the first rebuild NixOS owns root's keys: NixMox then reaches the hosts only through the
 * ~/.ssh/authorized_keys Proxmox wrote at creation, outside the configuration, and one module that stops reading it
 * locks every later deploy out), or an example's placeholder key is still there. Pure.
 */
export function deployKeyProblems(publicKey: string, rootKeys: readonly string[]): string[] {
  const problems: string[] = [];
  if (!rootKeys.some((entry) => blobOf(entry) === blobOf(publicKey))) {
    problems.push(
      `does not list the deploy key (${publicKey}): add the public half of nixmox:sshPrivateKey to it, so every host's NixOS ` +
        "configuration keeps letting NixMox in; without it NixMox reaches the hosts only through the ~/.ssh/authorized_keys Proxmox " +
        "wrote at creation, and a module that stops reading that file locks every later deploy out",
    );
  }
  const placeholders = rootKeys.filter((entry) => placeholderKeyBlobs.includes(blobOf(entry) ?? ""));
  if (placeholders.length > 0) {
    problems.push(`still holds the example's placeholder key (${placeholders.map((entry) => entry.trim().split(/\s+/).slice(0, 2).join(" ")).join(", ")}): replace it with your own admin keys`);
  }
  return problems;
}

/**
 * Stops `up` (before any resource) when `deployKeyProblems` finds something, and warns in a preview that `up` will.
 * `enforce` false (`nixmox:deployKeyCheck false`) is the explicit override, for those who know.
 */
export function checkDeployKey(publicKey: string, rootKeys: readonly string[], options: { enforce: boolean; deploying: boolean }): void {
  if (!options.enforce) return;
  const problems = deployKeyProblems(publicKey, rootKeys);
  if (problems.length === 0) return;
  const override = "or set `pulumi config set nixmox:deployKeyCheck false` to deploy anyway";
  if (options.deploying) {
    throw new ManifestError("deploy key", problems.map((message) => ({ subject: "network", field: "ssh_keys.root", message: `${message}; ${override}` })));
  }
  for (const message of problems) pulumi.log.warn(`network.ssh_keys.root ${message}. \`up\` refuses to deploy until this is fixed (${override}).`);
}
