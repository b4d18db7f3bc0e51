/**
 * `GeneratedSecret` (dynamic resource `pulumi-nodejs:dynamic/nixmox:GeneratedSecret`): a random value made once
 * and kept in the stack's state as a secret: database passwords, OIDC client secrets, Authentik's keys, whatever a
 * manifest needs and the stack config does not set.
 *
 * It replaces @pulumi/random's `RandomPassword`, whose plugin cannot be built from the Go module proxy our machines
 * reach (tools/engine/README.md), with the few lines it takes: Node's CSPRNG, letters and digits only (so a value
 * survives URLs, env files and SQL literals unescaped), unbiased (rejection sampling).
 *
 * - create: draws `length` characters.
 * - diff: a new `length` or `alphabet` replaces the value (a new one is drawn); nothing else changes it.
 * - read: returns the state: a refresh never redraws.
 * - update: never (diff only replaces); delete: nothing outside the state.
 *
 * `value` is always a secret output.
 */
import * as pulumi from "@pulumi/pulumi";

export const defaultSecretAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

export interface GeneratedSecretArgs {
  /** @default 48 */
  length?: pulumi.Input<number>;
  /** The characters drawn from, each equally likely. @default letters and digits */
  alphabet?: pulumi.Input<string>;
}

export interface GeneratedSecretInputs {
  length: number;
  alphabet: string;
}

export interface GeneratedSecretOutputs extends GeneratedSecretInputs {
  value: string;
}

/** `length` characters of `alphabet` from `randomBytes`, each equally likely (bytes past the last whole multiple are redrawn). */
export function drawSecret(length: number, alphabet: string, randomBytes: (size: number) => Buffer): string {
  if (!Number.isInteger(length) || length < 16 || length > 4096) throw new Error(`a generated secret's length must be a whole number from 16 to 4096, got ${length}`);
  const symbols = [...new Set(alphabet)];
  if (symbols.length < 2 || symbols.length > 256) throw new Error(`a generated secret's alphabet needs 2 to 256 distinct characters, got ${symbols.length}`);
  const limit = 256 - (256 % symbols.length);
  let out = "";
  while (out.length < length) {
    for (const byte of randomBytes(length * 2)) {
      if (byte < limit) out += symbols[byte % symbols.length];
      if (out.length === length) break;
    }
  }
  return out;
}

function resolveInputs(raw: Partial<GeneratedSecretInputs>): GeneratedSecretInputs {
  return { length: raw.length ?? 48, alphabet: raw.alphabet ?? defaultSecretAlphabet };
}

export const generatedSecretProvider = {
  async create(raw: GeneratedSecretInputs): Promise<{ id: string; outs: GeneratedSecretOutputs }> {
    const inputs = resolveInputs(raw);
    const { randomBytes, randomUUID } = require("node:crypto") as typeof import("node:crypto");
    return { id: randomUUID(), outs: { ...inputs, value: drawSecret(inputs.length, inputs.alphabet, randomBytes) } };
  },

  async diff(_id: string, olds: GeneratedSecretOutputs, raw: GeneratedSecretInputs): Promise<pulumi.dynamic.DiffResult> {
    const news = resolveInputs(raw);
    const replaces = (["length", "alphabet"] as const).filter((key) => olds[key] !== news[key]);
    return { changes: replaces.length > 0, replaces, deleteBeforeReplace: false };
  },

  async read(id: string, props: GeneratedSecretOutputs): Promise<pulumi.dynamic.ReadResult<GeneratedSecretOutputs>> {
    return { id, props };
  },

  async delete(): Promise<void> {
    return;
  },
};

export class GeneratedSecret extends pulumi.dynamic.Resource {
  /** The generated value (secret). */
  declare public readonly value: pulumi.Output<string>;

  constructor(name: string, args: GeneratedSecretArgs, opts?: pulumi.CustomResourceOptions) {
    super(generatedSecretProvider, name, { value: undefined, ...args }, { ...opts, additionalSecretOutputs: ["value"] }, "nixmox", "GeneratedSecret");
  }
}
