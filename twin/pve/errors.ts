/**
 * How the Proxmox VE API reports a failure (pve-manager PVE/HTTPServer.pm `rest_handler`; pve-http-server
 * src/PVE/APIServer/Formatter/Standard.pm `prepare_response_data`):
 * - a `PVE::Exception` keeps its code (400 parameter errors with `errors`, 403 permission, 401 authentication);
 * - any other `die` is a 500 whose message is the die text;
 * - the HTTP reason phrase is the message, and the JSON body is `{"data": null, "message": "…\n", "errors": …}`.
 * bpg reads the reason phrase (`res.Status`) and `errors` (proxmox/api/client.go `validateResponseCode`).
 */
export class PveError extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors?: Record<string, string>,
  ) {
    super(message);
    this.name = "PveError";
  }
}

/** pve-common PVE/Exception.pm `raise_param_exc`: 400 "Parameter verification failed." with the per-field errors. */
export function parameterError(errors: Record<string, string>): PveError {
  return new PveError(400, "Parameter verification failed.", errors);
}

/** A `die "…\n"` inside an API handler: 500 with the text. */
export function dieError(message: string): PveError {
  return new PveError(500, message);
}
