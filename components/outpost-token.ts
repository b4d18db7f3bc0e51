/**
 * Delivery of an Authentik outpost's API token to the authentik host, where the outpost runs under NixOS
 * (nixos/services/authentik-outposts.nix). Authentik creates the token with the outpost (`AuthentikOutpost`), so it
 * only exists after the authentik host is up: this is a second, small push after the SSO objects, not part of the
 * host's secrets push (which runs before the rebuild, and removes files it did not declare from its directory).
 *
 * The token travels on the command's stdin (a secret input), is written root-only and renamed into place, and the
 * outpost's unit is restarted so it reads the new token. A new token (outpost re-created) re-runs the command.
 */
import { outpostTokenDir, outpostUnit } from "../manifest";
import { shellQuote } from "./ssh/quote";

/** The remote command that installs the token read from stdin and restarts the outpost. No secret in it. */
export function renderOutpostTokenCommand(type: "ldap" | "radius"): string {
  const file = `${outpostTokenDir}/${type}-token`;
  return [
    "set -eu",
    "umask 077",
    `mkdir -p ${shellQuote(outpostTokenDir)}`,
    `chmod 0700 ${shellQuote(outpostTokenDir)}`,
    `cat > ${shellQuote(`${file}.tmp`)}`,
    `mv -f ${shellQuote(`${file}.tmp`)} ${shellQuote(file)}`,
    `systemctl restart ${shellQuote(outpostUnit(type))}`,
  ].join(" && ");
}
