/**
 * The stand-in system of the twin's hosts, host side: what the twin puts into a container before each start so
 * NixMox's activation runs unchanged inside it (twin/README.md, "The stand-in system"):
 *
 * - `/.twin/system` (copied at every start): the stand-in `nixos-rebuild`, `nix-env`, `systemd-run` and `systemctl`
 *   (bin/, reached through `/run/current-system/sw/bin`), the system builder, `switch-to-configuration`, the unit
 *   bookkeeping and the small listeners (lib/);
 * - `/.twin/boot.d/50-nixos`: the boot activation (the profile's system, its units, activation recovery);
 * - `/.twin/knobs/`: the files `failNext` writes, which the next `nixos-rebuild` reads once;
 * - mounted by boot.sh: `/.twin/bin/node` (this machine's node, read-only: the builder and the listeners run on it)
 *   and `/.twin/run` (a directory of the twin's: the fake Authentik API's socket and the token its host hands over).
 *
 * It also keeps the fake Authentik APIs in the twin's own process, one per Authentik database (`<db host>/<db name>`,
 * as the authentik host's host.json names it): their objects outlast a re-created authentik container, as Authentik's
 * data does in its PostgreSQL database on another host. A container reaches them at `/.twin/run/authentik.sock`; its
 * authentik unit (lib/build-system.js) writes `/.twin/run/authentik.json` ({ token, database }) when it starts: the
 * bootstrap token it read (the API token Authentik accepts, AUTHENTIK_BOOTSTRAP_TOKEN) and its database.
 */
import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { cpSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, copyFileSync, chmodSync } from "node:fs";
import { createServer, type Server } from "node:http";
import { join } from "node:path";
import { kindSpecs } from "../../manifest/kinds";
import { FakeAuthentik } from "../authentik/fake-api";
import { packageFile } from "../../manifest/package-root";

/** How a knob makes the next `nixos-rebuild` of a host fail (twin/system/bin/nixos-rebuild). */
export type Knob = "switch" | "activation" | `check:${string}` | `slow:${number}`;

// The source folder (bin/, lib/, boot), also when this module runs compiled from dist/ (which holds JavaScript only).
const systemDir = packageFile("twin", "system");

/** What a host's authentik unit hands the twin (`/.twin/run/authentik.json`). */
interface AuthentikRegistration {
  token: string | null;
  /** `<db host>/<db name>`: which fake Authentik's objects it serves. */
  database: string;
}

export class HostSystem {
  /** Fake Authentik APIs by database. */
  private readonly authentiks = new Map<string, FakeAuthentik>();
  /** The socket servers of the containers' run directories, by vmid. */
  private readonly sockets = new Map<number, Server>();

  constructor(
    /** Where the containers' run directories live (`<dir>/ct<vmid>`). */
    private readonly runRoot: string,
    /** The node binary the hosts' builder and listeners run on. @default this process's */
    readonly node: string = process.execPath,
  ) {}

  /** Puts the stand-in system into a container's root filesystem (before each start: a new twin keeps hosts current). */
  install(rootfs: string): void {
    const target = join(rootfs, ".twin", "system");
    rmSync(target, { recursive: true, force: true });
    for (const sub of ["bin", "lib", "nixpkgs"]) cpSync(join(systemDir, sub), join(target, sub), { recursive: true, dereference: true });
    // The units each kind's NixOS modules define, for systems built on a builder (lib/build-system.js --derivation).
    const kindUnits = Object.fromEntries(Object.entries(kindSpecs).map(([kind, spec]) => [kind, { units: spec.units, apps: Object.fromEntries(Object.entries(spec.apps).map(([app, entry]) => [app, entry.unit])) }]));
    writeFileSync(join(target, "kind-units.json"), `${JSON.stringify(kindUnits)}\n`);
    mkdirSync(join(rootfs, ".twin", "boot.d"), { recursive: true });
    copyFileSync(join(systemDir, "boot"), join(rootfs, ".twin", "boot.d", "50-nixos"));
    chmodSync(join(rootfs, ".twin", "boot.d", "50-nixos"), 0o755);
    mkdirSync(join(rootfs, ".twin", "knobs"), { recursive: true });
  }

  /** The directory mounted at the container's `/.twin/run`, with the Authentik socket listening in it. */
  async runDir(vmid: number): Promise<string> {
    const dir = join(this.runRoot, `ct${vmid}`);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    if (!this.sockets.has(vmid)) {
      const socket = join(dir, "authentik.sock");
      rmSync(socket, { force: true });
      const server = createServer((request, response) => {
        const registration = this.registration(vmid);
        if (!registration) {
          response.writeHead(503);
          response.end();
          return;
        }
        void this.authentikOf(registration.database).handle(request, response, registration.token);
      });
      await new Promise<void>((resolve, reject) => server.once("error", reject).listen(socket, resolve));
      this.sockets.set(vmid, server);
    }
    return dir;
  }

  private registration(vmid: number): AuthentikRegistration | null {
    const file = join(this.runRoot, `ct${vmid}`, "authentik.json");
    if (!existsSync(file)) return null;
    try {
      return JSON.parse(readFileSync(file, "utf8")) as AuthentikRegistration;
    } catch {
      return null;
    }
  }

  private authentikOf(database: string): FakeAuthentik {
    let api = this.authentiks.get(database);
    if (!api) {
      api = new FakeAuthentik(null);
      this.authentiks.set(database, api);
    }
    return api;
  }

  /** The fake Authentik API that container `vmid`'s authentik unit serves (its objects and requests), if it ran. */
  authentik(vmid: number): FakeAuthentik | undefined {
    const registration = this.registration(vmid);
    return registration ? this.authentikOf(registration.database) : undefined;
  }

  /** Makes the next `nixos-rebuild` in the container fail as `knob` says (read once, then removed). */
  failNext(rootfs: string, knob: Knob): void {
    const dir = join(rootfs, ".twin", "knobs");
    mkdirSync(dir, { recursive: true });
    const [name, value] = knob.includes(":") ? [knob.slice(0, knob.indexOf(":")), knob.slice(knob.indexOf(":") + 1)] : [knob, ""];
    writeFileSync(join(dir, name), value);
  }

  async close(): Promise<void> {
    for (const server of this.sockets.values()) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
    this.sockets.clear();
  }
}

/**
 * The nixpkgs pin of a twin stack whose hosts build on a builder: the stand-in nixpkgs (nixpkgs/source) by its NAR
 * hash, with a commit and a time of its own, as stack config (`nixmox:nixpkgsRev`, `…NarHash`, `…LastModified`). A
 * complete lock lets the builder's real Nix take the source from its store, where its system put it.
 */
export function standInNixpkgsConfig(): Record<string, string> {
  const narHash = execFileSync("nix", ["--extra-experimental-features", "nix-command", "hash", "path", "--type", "sha256", "--sri", join(systemDir, "nixpkgs", "source")], { encoding: "utf8" }).trim();
  return {
    "nixmox:nixpkgsRev": createHash("sha1").update(narHash).digest("hex"),
    "nixmox:nixpkgsNarHash": narHash,
    "nixmox:nixpkgsLastModified": "1767225600",
  };
}
