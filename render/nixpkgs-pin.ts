/**
 * The one nixpkgs every host is built from, written into each host's flake.lock.
 *
 * Overridden by the stack config keys `nixmox:nixpkgsRev` + `nixmox:nixpkgsNarHash` (components/stack-config.ts)
 * or by `nixmox render --nixpkgs '{ rev, narHash, ref?, lastModified? }'`:
 * `rev` is a NixOS/nixpkgs commit, `narHash` its NAR hash (`nix flake prefetch github:NixOS/nixpkgs/<rev>`
 * prints both), `ref` the branch it came from (kept in flake.nix and flake.lock's "original" so that
 * `nix flake update` later follows that branch; omitted: the input is pinned to the commit itself), and
 * `lastModified` the commit's Unix time (omitted: Nix reads it when it fetches).
 */
import { ManifestError, type Problem } from "../manifest";

export interface NixpkgsPin {
  rev: string;
  narHash: string;
  /** Branch the input follows, e.g. "nixos-25.11"; null: pinned to `rev` only. */
  ref: string | null;
  /** Unix seconds of the commit; null: left to Nix. */
  lastModified: number | null;
}

/**
 * nixos-25.11 (NixOS stable) as locked in a public flake.lock: renovatebot/renovate,
 * lib/modules/manager/nix/extract.spec.ts ("realistic case 2 out of 4"), nodes.nixpkgs.locked
 * (lastModified 1779796641 = 2026-05-26). `nix flake lock` cannot reach the network where NixMox is developed,
 * so the pin is taken as published there.
 */
export const defaultNixpkgsPin: NixpkgsPin = {
  rev: "25f538306313eae3927264466c70d7001dcea1df",
  narHash: "sha256-ZsIrKmhp4vbBXoXXmR/tBXA/UCsAQiJL9vsgZEduhVY=",
  ref: "nixos-25.11",
  lastModified: 1779796641,
};

/** NixOS release of the default pin: every host's system.stateVersion on first install. */
export const defaultStateVersion = "25.11";

const subject = "nixpkgs pin";

/**
 * Validates a nixpkgs pin override (undefined/null: the default pin). Throws a ManifestError
 * listing every bad field.
 */
export function resolveNixpkgsPin(value: unknown): NixpkgsPin {
  if (value === undefined || value === null) return defaultNixpkgsPin;
  const problems: Problem[] = [];
  const problem = (field: string, message: string) => problems.push({ subject, field, message });
  if (typeof value !== "object" || Array.isArray(value)) {
    problem("", 'must be an object { rev, narHash, ref?, lastModified? }');
    throw new ManifestError("stack config", problems);
  }
  const record = value as Record<string, unknown>;
  for (const key of Object.keys(record).sort()) {
    if (!["rev", "narHash", "ref", "lastModified"].includes(key)) problem(key, "is not a known field; use rev, narHash, ref or lastModified");
  }
  const { rev, narHash, ref, lastModified } = record;
  if (typeof rev !== "string" || !/^[0-9a-f]{40}$/.test(rev)) {
    problem("rev", `must be a 40-character lower-case git commit hash of NixOS/nixpkgs, got ${JSON.stringify(rev) ?? "nothing"}`);
  }
  if (typeof narHash !== "string" || !/^sha256-[A-Za-z0-9+/]{43}=$/.test(narHash)) {
    problem("narHash", `must be an SRI sha256 hash such as "sha256-…=" (nix flake prefetch github:NixOS/nixpkgs/<rev> prints it), got ${JSON.stringify(narHash) ?? "nothing"}`);
  }
  if (ref !== undefined && ref !== null && (typeof ref !== "string" || !/^[A-Za-z0-9._-]+(\/[A-Za-z0-9._-]+)*$/.test(ref))) {
    problem("ref", `must be a branch name such as "nixos-25.11", got ${JSON.stringify(ref)}`);
  }
  if (lastModified !== undefined && lastModified !== null && (typeof lastModified !== "number" || !Number.isSafeInteger(lastModified) || lastModified <= 0)) {
    problem("lastModified", `must be the commit's Unix time in seconds, got ${JSON.stringify(lastModified)}`);
  }
  if (problems.length > 0) throw new ManifestError("stack config", problems);
  return {
    rev: rev as string,
    narHash: narHash as string,
    ref: typeof ref === "string" ? ref : null,
    lastModified: typeof lastModified === "number" ? lastModified : null,
  };
}
