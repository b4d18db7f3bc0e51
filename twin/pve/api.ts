/**
 * The Proxmox VE API twin's HTTP side: `/api2/json/…` routing, token authentication, parameter checks, JSON
 * answers and errors shaped as pve-manager answers them, and a log of every call.
 *
 * - A path the twin does not implement answers 501 `Method 'GET /nodes/pve/…' not implemented`, the very answer
 *   pve-manager gives for a path it does not know (PVE/HTTPServer.pm `rest_handler`), and is listed in
 *   `unimplemented`: a call a client needs is never silently OK.
 * - Parameters come from the query string and, for POST/PUT, the `application/x-www-form-urlencoded` body, and are
 *   checked against the route's schema (pve-common PVE/JSONSchema.pm `validate`): an unknown or mistyped one is a
 *   400 "Parameter verification failed." naming it.
 */
import type { IncomingMessage, ServerResponse } from "node:http";
import { createServer, type Server } from "node:https";
import type { AccessControl } from "./access";
import type { Cluster } from "./cluster";
import { parameterError, PveError } from "./errors";
import { typedValue } from "./lxc-config";

export type ParameterType = "string" | "integer" | "number" | "boolean";

export interface ParameterSpec {
  type: ParameterType;
  optional?: boolean;
  pattern?: RegExp;
  enum?: string[];
  minimum?: number;
}

export interface ApiCall {
  cluster: Cluster;
  access: AccessControl;
  /** `user@realm!tokenid` of the request's token. */
  authid: string;
  /** Path parameters (`node`, `vmid`, `upid`, …), already checked. */
  path: Record<string, string>;
  /** Query and body parameters, checked against the route's schema. */
  params: Record<string, string>;
}

export interface Route {
  method: "GET" | "POST" | "PUT" | "DELETE";
  /** `/nodes/{node}/lxc/{vmid}/status/current` */
  path: string;
  /** The upstream handler this route follows: `pve-container src/PVE/API2/LXC/Status.pm vm_status`. */
  source: string;
  parameters: Record<string, ParameterSpec>;
  /** Schema of parameters whose names follow a pattern (a container's configuration keys). */
  extraParameter?: (name: string) => ParameterSpec | undefined;
  /**
   * The route's declarative `permissions => { check => … }`, checked before the parameters (pve-manager
   * PVE/HTTPServer.pm `rest_handler` runs `check_api2_permissions`, then the handler validates its parameters).
   */
  check?(call: ApiCall): void;
  handle(call: ApiCall): unknown;
}

export interface LoggedCall {
  method: string;
  /** The route's pattern, or the raw path when no route matched. */
  route: string;
  path: string;
  status: number;
  authid: string | null;
  /** The client's User-Agent (bpg's Go client sends `Go-http-client/1.1`). */
  userAgent: string;
  /** The error message of a failed call. */
  message?: string;
}

/** Path parameter formats (pve-common PVE/JSONSchema.pm standard options `pve-node`, `pve-vmid`, `pve-storage-id`). */
const pathFormats: Record<string, { pattern: RegExp; error: string }> = {
  node: { pattern: /^[a-zA-Z0-9]([a-zA-Z0-9-]*[a-zA-Z0-9])?$/, error: "value does not look like a valid node name" },
  vmid: { pattern: /^[1-9]\d{2,8}$/, error: "value must have a minimum value of 100" },
  storage: { pattern: /^[a-z][a-z0-9\-_.]*[a-z0-9]$/i, error: "storage ID '{}' contains illegal characters" },
  upid: { pattern: /^\S+$/, error: "invalid format" },
  volume: { pattern: /^\S+$/, error: "invalid format" },
};

export class ApiServer {
  readonly calls: LoggedCall[] = [];
  readonly unimplemented: string[] = [];
  private readonly server: Server;
  private readonly routes: { route: Route; regex: RegExp; names: string[] }[];

  constructor(
    private readonly cluster: Cluster,
    private readonly access: AccessControl,
    routes: Route[],
    tls: { key: string; cert: string },
  ) {
    this.routes = routes.map((route) => {
      const names: string[] = [];
      const regex = new RegExp(`^${route.path.replace(/\{(\w+)\}/g, (_, name: string) => {
        names.push(name);
        return "([^/]+)";
      })}$`);
      return { route, regex, names };
    });
    this.server = createServer(tls, (request, response) => void this.serve(request, response));
  }

  /** Listens on a Unix socket (the world's forwarder relays to it). */
  listen(socketPath: string): Promise<void> {
    return new Promise((resolve, reject) => {
      this.server.once("error", reject);
      this.server.listen(socketPath, () => resolve());
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  private async serve(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "https://twin");
    const method = request.method ?? "GET";
    const relative = url.pathname.replace(/^\/api2\/json/, "");
    const logged: LoggedCall = { method, route: relative, path: relative, status: 0, authid: null, userAgent: request.headers["user-agent"] ?? "" };
    this.calls.push(logged);
    try {
      if (!url.pathname.startsWith("/api2/json/")) throw new PveError(501, `Method '${method} ${url.pathname}' not implemented`);
      const body = await readBody(request);
      logged.authid = this.access.authenticate(request.headers.authorization);
      const match = this.match(method, relative);
      if (!match) {
        this.unimplemented.push(`${method} ${relative}`);
        throw new PveError(501, `Method '${method} ${relative}' not implemented`);
      }
      logged.route = match.route.path;
      const params: Record<string, string> = Object.fromEntries(url.searchParams.entries());
      if (method === "POST" || method === "PUT") Object.assign(params, Object.fromEntries(new URLSearchParams(body).entries()));
      // A path parameter may be repeated in the body with the same value (bpg sends `node` and `storage` again).
      const conflicts: Record<string, string> = {};
      for (const [name, value] of Object.entries(match.path)) {
        if (params[name] === undefined) continue;
        if (params[name] !== value) conflicts[name] = "duplicate parameter (already defined in URI) with conflicting values!";
        delete params[name];
      }
      if (Object.keys(conflicts).length) throw parameterError(conflicts);
      const call: ApiCall = { cluster: this.cluster, access: this.access, authid: logged.authid, path: match.path, params };
      match.route.check?.(call);
      checkParameters(match.route, params);
      const data = await match.route.handle(call);
      logged.status = 200;
      send(response, 200, "OK", { data: data ?? null });
    } catch (error) {
      const failure = error instanceof PveError ? error : new PveError(500, (error as Error).message);
      logged.status = failure.status;
      const message = failure.message.replace(/\n+$/, "");
      logged.message = message;
      send(response, failure.status, message.replace(/[\r\n]+/g, " "), { data: null, message: `${message}\n`, ...(failure.errors ? { errors: failure.errors } : {}) });
    }
  }

  private match(method: string, path: string): { route: Route; path: Record<string, string> } | null {
    for (const { route, regex, names } of this.routes) {
      if (route.method !== method) continue;
      const found = regex.exec(path);
      if (!found) continue;
      const values: Record<string, string> = {};
      const errors: Record<string, string> = {};
      names.forEach((name, index) => {
        const value = decodeURIComponent(found[index + 1]!);
        values[name] = value;
        const format = pathFormats[name];
        if (format && !format.pattern.test(value)) errors[name] = format.error.replace("{}", value);
      });
      if (Object.keys(errors).length) throw parameterError(errors);
      return { route, path: values };
    }
    return null;
  }
}

function checkParameters(route: Route, params: Record<string, string>): void {
  const errors: Record<string, string> = {};
  for (const [name, value] of Object.entries(params)) {
    const spec = route.parameters[name] ?? route.extraParameter?.(name);
    if (!spec) {
      errors[name] = "property is not defined in schema and the schema does not allow additional properties";
      continue;
    }
    const typed = typedValue(spec.type, value);
    if ("error" in typed) errors[name] = typed.error;
    else if (spec.enum && !spec.enum.includes(value)) errors[name] = `value '${value}' does not have a value in the enumeration '${spec.enum.join(", ")}'`;
    else if (spec.pattern && !spec.pattern.test(value)) errors[name] = `value does not match the regex pattern`;
    else if (spec.minimum !== undefined && Number(value) < spec.minimum) errors[name] = `value must have a minimum value of ${spec.minimum}`;
  }
  for (const [name, spec] of Object.entries(route.parameters)) {
    if (!spec.optional && params[name] === undefined) errors[name] = "property is missing and it is not optional";
  }
  if (Object.keys(errors).length) throw parameterError(errors);
}

function readBody(request: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    request.on("error", reject);
  });
}

function send(response: ServerResponse, status: number, reason: string, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, reason, { "Content-Type": "application/json;charset=UTF-8", "Content-Length": Buffer.byteLength(text) });
  response.end(text);
}

/** A boolean parameter's value (`1`, `yes`, `true`, …). */
export function flag(value: string | undefined): boolean {
  return value !== undefined && /^(1|on|yes|true)$/i.test(value);
}
