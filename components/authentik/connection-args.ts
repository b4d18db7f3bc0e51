/**
 * The connection arguments every Authentik resource takes, and how its constructor stores them: the token and the
 * tunnel (it holds the deploy key) as secrets. Kept apart from api.ts, whose functions the dynamic providers
 * serialize: this module uses the Pulumi SDK at construction only.
 */
import * as pulumi from "@pulumi/pulumi";
import type { AuthentikTunnel } from "./api";

export interface AuthentikConnectionArgs {
  /** Authentik base URL, e.g. `http://192.168.99.12:9000` (the API lives under `/api/v3`). */
  url: pulumi.Input<string>;
  /** API token with admin rights (the `bootstrap_token` secret). Always stored as a secret. */
  token: pulumi.Input<string>;
  /** Reach the API through SSH to the authentik host (security review H2); stored as a secret. @default null (direct) */
  tunnel?: pulumi.Input<AuthentikTunnel | null>;
  /** The NixMox service the object belongs to (a client, or the authentik service for an outpost); named in every error. */
  service: pulumi.Input<string>;
}

/** The connection props of a resource, secrets wrapped. */
export function connectionProps(args: AuthentikConnectionArgs) {
  return {
    url: args.url,
    token: pulumi.secret(args.token),
    tunnel: args.tunnel === undefined || args.tunnel === null ? null : pulumi.secret(args.tunnel),
    service: args.service,
  };
}
