/**
 * The twin's own process, for `nixmox twin up|fail|down` (cli/commands/twin.ts). The twin's Proxmox API and its
 * hosts live in the process that started them (the API answers from it, every host dies with it: `setpriv
 * --pdeathsig`), so a twin that outlives one command needs a process of its own. This is it:
 *
 *   node twin/daemon.js STATE_DIR        (detached, its output in STATE_DIR/daemon.log)
 *
 * reads STATE_DIR/request.json ({ projectRoot, manifest, prefix, pulumi }), starts the homelab (twin/homelab.ts) in
 * STATE_DIR/homelab, then writes STATE_DIR/daemon.json (mode 0600): its pid and what a command needs to run the engine
 * against the twin (the project folder, the stack, the `pulumi` that runs inside the twin's world, the engine's
 * environment with the passphrase as a file, never its value). A start that fails writes STATE_DIR/error instead.
 *
 * It serves STATE_DIR/control.sock (HTTP over a Unix socket, mode 0600, so root only):
 *   GET  /status                  → { containers: [{ vmid, running }] }
 *   POST /fail?vmid=N&knob=KNOB   → the next `nixos-rebuild` of container N fails as KNOB says (twin.failNext)
 *   POST /stop                    → stops the twin (every host, every namespace), removes daemon.json and exits
 * SIGTERM and SIGINT stop it the same way.
 */
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { existsSync, readFileSync, renameSync, rmSync, writeFileSync } from "node:fs";
import * as path from "node:path";
import { startTwinHomelab, type TwinHomelab } from "./homelab";
import type { Knob } from "./system";
import { daemonFiles } from "./daemon-files";

export { daemonFiles };

/** What `nixmox twin up` asks the daemon to start. */
export interface DaemonRequest {
  projectRoot: string;
  manifest: string;
  prefix: string;
  pulumi: string;
}

/** What the daemon tells the commands once the twin runs (STATE_DIR/daemon.json). */
export interface DaemonInfo {
  pid: number;
  prefix: string;
  /** The twin's world: the network namespace the engine runs in. */
  world: string;
  /** The engine's project folder and the stack configured for the twin. */
  projectDir: string;
  stack: string;
  /** A folder whose bin/pulumi runs the real CLI inside the twin's world (`PulumiCommand.get({ root })`). */
  pulumiRoot: string;
  /** The engine's environment (backend, engine home, the twin's certificate, the passphrase file). */
  env: Record<string, string>;
  /** The manifest the stack was first configured with. */
  manifest: string;
  /** The deploy key's private key file (for `nixmox ssh --identity`). */
  deployKey: string;
}


/** The engine's variables a command needs; the passphrase only as a file (the homelab keeps it in one, mode 0600). */
const engineVariables = ["PATH", "PULUMI_HOME", "PULUMI_BACKEND_URL", "PULUMI_SKIP_UPDATE_CHECK", "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION", "PULUMI_NODEJS_TRANSPILE_ONLY", "SSL_CERT_FILE", "NODE_EXTRA_CA_CERTS", "NO_COLOR"];

async function main(stateDir: string): Promise<void> {
  const files = daemonFiles(stateDir);
  const request = JSON.parse(readFileSync(files.request, "utf8")) as DaemonRequest;
  let homelab: TwinHomelab;
  try {
    homelab = await startTwinHomelab({ projectRoot: request.projectRoot, manifest: request.manifest, stateDir: files.homelab, prefix: request.prefix, pulumi: request.pulumi });
  } catch (error) {
    writeFileSync(files.error, `${error instanceof Error ? error.message : String(error)}\n`, { mode: 0o600 });
    process.exit(1);
  }
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      server.close();
      rmSync(files.info, { force: true });
      rmSync(files.socket, { force: true });
      await homelab.stop().catch((error: unknown) => process.stderr.write(`twin: stopping: ${(error as Error).message}\n`));
      process.stderr.write("twin: stopped\n");
      process.exit(0);
    })();
    return stopping;
  };
  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const url = new URL(req.url ?? "/", "http://twin");
    const reply = (status: number, body: unknown) => {
      res.writeHead(status, { "Content-Type": "application/json" });
      res.end(`${JSON.stringify(body)}\n`);
    };
    try {
      if (req.method === "GET" && url.pathname === "/status") {
        const node = homelab.twin.cluster.node("pve");
        reply(200, { containers: [...node.containers.entries()].map(([vmid, container]) => ({ vmid, running: container.host.running })) });
      } else if (req.method === "POST" && url.pathname === "/fail") {
        const vmid = Number(url.searchParams.get("vmid"));
        const knob = url.searchParams.get("knob") ?? "";
        if (!/^(switch|activation|check:[A-Za-z0-9:._@/-]+|slow:\d+)$/.test(knob)) {
          reply(400, { error: `unknown knob "${knob}": switch, activation, check:<check name> or slow:<seconds>` });
        } else if (!homelab.twin.cluster.node("pve").containers.has(vmid)) {
          reply(404, { error: `the twin has no container ${vmid}` });
        } else {
          homelab.twin.failNext(vmid, knob as Knob);
          reply(200, { vmid, knob });
        }
      } else if (req.method === "POST" && url.pathname === "/stop") {
        res.on("finish", () => void stop());
        reply(200, { stopping: true });
      } else {
        reply(404, { error: `no route ${req.method} ${url.pathname}` });
      }
    } catch (error) {
      reply(500, { error: (error as Error).message });
    }
  });
  rmSync(files.socket, { force: true });
  await new Promise<void>((resolve, reject) => server.once("error", reject).listen(files.socket, resolve));
  const env: Record<string, string> = {};
  for (const name of engineVariables) if (homelab.env[name] !== undefined) env[name] = homelab.env[name]!;
  env.PULUMI_CONFIG_PASSPHRASE_FILE = path.join(files.homelab, "passphrase");
  const info: DaemonInfo = {
    pid: process.pid,
    prefix: request.prefix,
    world: homelab.twin.world.netns,
    projectDir: homelab.projectDir,
    stack: homelab.stack,
    pulumiRoot: homelab.pulumiRoot,
    env,
    manifest: homelab.manifest,
    deployKey: homelab.deployKey.privateKeyFile,
  };
  // Written whole, then renamed: a command never reads half of it.
  writeFileSync(`${files.info}.tmp`, `${JSON.stringify(info, null, 2)}\n`, { mode: 0o600 });
  renameSync(`${files.info}.tmp`, files.info);
  process.stderr.write(`twin: running (pid ${process.pid}, prefix ${request.prefix})\n`);
  for (const signal of ["SIGTERM", "SIGINT"] as const) process.on(signal, () => void stop());
  process.on("SIGHUP", () => undefined);
}

if (require.main === module) {
  const stateDir = process.argv[2];
  if (!stateDir || !existsSync(path.join(stateDir, "request.json"))) {
    process.stderr.write("usage: node twin/daemon.js STATE_DIR (with STATE_DIR/request.json); `nixmox twin up` starts it\n");
    process.exit(2);
  }
  main(path.resolve(stateDir)).catch((error: unknown) => {
    writeFileSync(daemonFiles(path.resolve(stateDir)).error, `${error instanceof Error ? error.message : String(error)}\n`, { mode: 0o600 });
    process.exit(1);
  });
}
