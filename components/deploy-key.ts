/**
 * The deploy key's public half, derived from `nixmox:sshPrivateKey` so the stack holds one key, not a pair
 * that can drift apart. Proxmox writes it to the container's /root/.ssh/authorized_keys on first boot
 * (`userAccount.keys`), and the core NixOS module keeps sshd reading that file (`authorizedKeysInHomedir`), so
 * NixMox keeps access after every switch; listing it in `network.ssh_keys.root` also makes it part of the
 * NixOS configuration.
 */
import * as pulumi from "@pulumi/pulumi";

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

/** Warns (at deploy time) when the deploy key is missing from the manifest's root keys. */
export function warnWhenNotAuthorized(publicKey: pulumi.Output<string>, manifestRootKeys: string[]): void {
  publicKey.apply((key) => {
    const blob = key.split(" ")[1];
    if (!manifestRootKeys.some((entry) => entry.trim().split(/\s+/)[1] === blob)) {
      pulumi.log.warn(
        `network.ssh_keys.root does not list the deploy key (${key}): NixMox reaches the hosts only through the ` +
          "/root/.ssh/authorized_keys that Proxmox wrote when it created each container. Add the public half of " +
          "nixmox:sshPrivateKey to network.ssh_keys.root to make it part of every host's NixOS configuration.",
      );
    }
  });
}
