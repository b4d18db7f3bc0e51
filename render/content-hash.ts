/**
 * A host's content hash: SHA-256 over its files, sorted by path, each as `path NUL length NUL bytes`. It decides
 * what redeploys, names the pushed directory, and is what a refresh recomputes on the host (components/config-push.ts).
 *
 * Its own module, importing only node:crypto: the config push's refresh check is serialized into a dynamic provider,
 * and everything a function there imports is serialized with it (render/host.ts would bring the manifest's zod).
 */
import { createHash } from "node:crypto";

export function contentHash(files: Record<string, string>): string {
  const hash = createHash("sha256");
  for (const path of Object.keys(files).sort()) {
    const content = Buffer.from(files[path], "utf8");
    hash.update(`${path}\0${content.length}\0`);
    hash.update(content);
  }
  return hash.digest("hex");
}
