/**
 * The files of the twin's state folder (`.nixmox/twin/`): twin/daemon.ts writes them, `nixmox twin` reads them. Its
 * own module, so the CLI reads the layout without loading the twin.
 */
import * as path from "node:path";

/** The state folder's files: what the background process writes and answers on, and what `nixmox twin` keeps beside them. */
export function daemonFiles(stateDir: string) {
  return {
    request: path.join(stateDir, "request.json"),
    info: path.join(stateDir, "daemon.json"),
    error: path.join(stateDir, "error"),
    log: path.join(stateDir, "daemon.log"),
    socket: path.join(stateDir, "control.sock"),
    homelab: path.join(stateDir, "homelab"),
    deployed: path.join(stateDir, "deployed.json"),
    lock: path.join(stateDir, "lock"),
  };
}
