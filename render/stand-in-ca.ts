/**
 * The stand-in CA of `nixmox render --configs` (review N4). A deploy renders every host with the stack's managed CA
 * (components/managed-ca.ts, render option `caRootCertificate`), so the proxy's Caddyfile has a `pki` block and each
 * internal-TLS site an `issuer internal { ca nixmox }`. Offline there is no stack, so the reviewable configs are
 * rendered with a throwaway root made here instead: generated on every run, its key never written anywhere (the
 * configs name only the credential files the deploy delivers, render/host-data.ts managedCaSecrets), and named for
 * what it is in its subject, so it cannot be mistaken for the homelab's root.
 *
 * openssl(1) makes it (`req -x509`, ECDSA P-256, CA with path length 1 and keyCertSign/cRLSign, as the managed root);
 * Node's crypto can make keys but not certificates.
 */
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import * as path from "node:path";

export const standInCaSubject = "NixMox stand-in root of render --configs, not a deploy's";

/** Thrown when openssl is missing or fails; the message says what to install. */
export class StandInCaError extends Error {}

/** A fresh self-signed root certificate (PEM) whose key is discarded. */
export function standInCaCertificate(): string {
  const dir = mkdtempSync(path.join(tmpdir(), "nixmox-stand-in-ca-"));
  try {
    execFileSync("openssl", [
      "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
      "-keyout", path.join(dir, "key.pem"), "-out", path.join(dir, "cert.pem"), "-days", "1",
      "-subj", `/O=NixMox/CN=${standInCaSubject}`,
      "-addext", "basicConstraints=critical,CA:TRUE,pathlen:1", "-addext", "keyUsage=critical,keyCertSign,cRLSign",
    ], { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
    return readFileSync(path.join(dir, "cert.pem"), "utf8");
  } catch (error) {
    const failure = error as NodeJS.ErrnoException & { stderr?: Buffer };
    if (failure.code === "ENOENT") {
      throw new StandInCaError("--configs needs openssl on the PATH to make the stand-in CA the proxy's Caddyfile is rendered with (Debian: apt install openssl)");
    }
    throw new StandInCaError(`openssl could not make the stand-in CA: ${String(failure.stderr ?? failure.message).trim()}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
