/**
 * `BuildSigningKey` (dynamic resource `pulumi-nodejs:dynamic/nixmox:BuildSigningKey`): the stack's Nix signing key,
 * made once and kept in the stack's state as a secret, like the other generated secrets
 * (components/secrets/generated-secret.ts). Every system built once (components/build) is signed with it, and every
 * host trusts its public half; a host accepts no copied path without its signature.
 *
 * The format is Nix's own (`nix-store --generate-binary-cache-key NAME secret public`): `NAME:base64(64-byte Ed25519
 * secret key)` and `NAME:base64(32-byte public key)`.
 *
 * - create: generates the pair (Node's CSPRNG, Ed25519), or takes the stack config's `nixmox:buildSigningKey`
 *   (secret) when set, deriving its public half.
 * - diff: a new `name`, or a changed given key, replaces it (every host then trusts the new key with its next
 *   config; systems are signed again); nothing else does.
 * - read: the state (a refresh never draws a new key); update: never; delete: nothing outside the state.
 *
 * `secretKey` is always a secret output; `publicKey` is public.
 */
import * as pulumi from "@pulumi/pulumi";
import { generateNixSigningKey } from "./nix-commands";

export interface BuildSigningKeyArgs {
  /** The key's name, shown in nix.conf and `nix path-info --sigs`. */
  name: pulumi.Input<string>;
  /** A key to use instead of generating one (`NAME:base64`, secret). @default generated */
  given?: pulumi.Input<string>;
}

export interface BuildSigningKeyInputs {
  name: string;
  given: string;
}

export interface BuildSigningKeyOutputs {
  name: string;
  /** SHA-256 of the given key ("" when generated): a changed one replaces the key. */
  givenSha256: string;
  publicKey: string;
  secretKey: string;
}

/** The public half of a Nix secret key `NAME:base64(seed ‖ public)`; throws (without the key) when malformed. */
export function nixPublicKeyOf(secretKey: string): string {
  const match = /^([A-Za-z0-9._-]+):([A-Za-z0-9+/]+={0,2})$/.exec(secretKey.trim());
  const bytes = match ? Buffer.from(match[2], "base64") : Buffer.alloc(0);
  if (!match || bytes.length !== 64) {
    throw new Error("nixmox:buildSigningKey must be a Nix secret key \"name:base64\" as `nix-store --generate-binary-cache-key` writes it (64 bytes)");
  }
  return `${match[1]}:${bytes.subarray(32).toString("base64")}`;
}

function sha256(text: string): string {
  const { createHash } = require("node:crypto") as typeof import("node:crypto");
  return text === "" ? "" : createHash("sha256").update(text, "utf8").digest("hex");
}

export const buildSigningKeyProvider = {
  async create(raw: BuildSigningKeyInputs): Promise<{ id: string; outs: BuildSigningKeyOutputs }> {
    const given = (raw.given ?? "").trim();
    let pair: { secretKey: string; publicKey: string };
    if (given !== "") {
      pair = { secretKey: given, publicKey: nixPublicKeyOf(given) };
    } else {
      pair = generateNixSigningKey(raw.name);
    }
    return { id: raw.name, outs: { name: raw.name, givenSha256: sha256(given), ...pair } };
  },

  async diff(_id: string, olds: BuildSigningKeyOutputs, raw: BuildSigningKeyInputs): Promise<pulumi.dynamic.DiffResult> {
    const replaces = [...(raw.name !== olds.name ? ["name"] : []), ...(sha256((raw.given ?? "").trim()) !== olds.givenSha256 ? ["given"] : [])];
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
  },

  async read(id: string, props: BuildSigningKeyOutputs): Promise<pulumi.dynamic.ReadResult<BuildSigningKeyOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class BuildSigningKey extends pulumi.dynamic.Resource {
  declare public readonly publicKey: pulumi.Output<string>;
  /** The secret key (secret). */
  declare public readonly secretKey: pulumi.Output<string>;

  constructor(name: string, args: BuildSigningKeyArgs, opts?: pulumi.CustomResourceOptions) {
    super(
      buildSigningKeyProvider,
      name,
      { publicKey: undefined, secretKey: undefined, givenSha256: undefined, name: args.name, given: pulumi.secret(args.given ?? "") },
      { ...opts, additionalSecretOutputs: ["secretKey", "givenSha256"] },
      "nixmox",
      "BuildSigningKey",
    );
  }
}
