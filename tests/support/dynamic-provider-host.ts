/**
 * The engine's view of our dynamic providers, for tests:
 *
 * - `serializeProviders` serializes providers in a child process that loads TypeScript the way the language
 *   host does and calls `serializeFunction` the way `pulumi.dynamic.Resource` does (serialize-like-engine.js).
 * - `startDynamicProviderHost` runs the real dynamic-provider plugin of the installed SDK
 *   (`@pulumi/pulumi/cmd/dynamic-provider`, what `pulumi-resource-pulumi-nodejs` starts) in a child process and
 *   talks to it over its real gRPC interface, like the engine: every property travels as a protobuf Struct
 *   with the serialized provider under `__provider`; the plugin loads it with `require-from-string(...).handler()`.
 *   Unknown inputs are sent as the engine sends them to a provider that does not accept secrets
 *   (`acceptSecrets=false`): the sentinel string `pulumi.runtime.unknownValue`, secrets as plain values.
 *
 * Reusable: `const host = await startDynamicProviderHost(); const p = host.provider(text); await p.create({...})`.
 */
import { ChildProcess, execFile, spawn } from "node:child_process";
import { join } from "node:path";
import { promisify } from "node:util";

const projectDir = join(__dirname, "..", "..");
const urnPrefix = "urn:pulumi:test::nixmox::pulumi-nodejs:dynamic/nixmox";

export interface SerializedProvider {
  text: string;
  containsSecrets: boolean;
}

/**
 * `specs` are `<path from the project root>#<export>`, e.g. `components/ssh/ssh-host-key.ts#sshHostKeyProvider`.
 * Transpile-only by default (what `PULUMI_NODEJS_TRANSPILE_ONLY=true` does; type-checking changes no emitted code).
 */
export async function serializeProviders(specs: string[], env: NodeJS.ProcessEnv = {}): Promise<Record<string, SerializedProvider>> {
  const { stdout } = await promisify(execFile)(process.execPath, [join(__dirname, "serialize-like-engine.js"), projectDir, ...specs], {
    cwd: projectDir,
    env: { ...process.env, PULUMI_NODEJS_TRANSPILE_ONLY: "true", ...env },
    maxBuffer: 64 * 1024 * 1024,
  });
  return JSON.parse(stdout) as Record<string, SerializedProvider>;
}

export interface CheckResult {
  inputs: Record<string, unknown>;
  failures: { property: string; reason: string }[];
}

export interface DiffResult {
  changes: "some" | "none" | "unknown";
  replaces: string[];
  deleteBeforeReplace: boolean;
}

/** One serialized provider as the engine drives it; `__provider` is added to every property bag. */
export interface HostedProvider {
  check(olds: Record<string, unknown>, news: Record<string, unknown>): Promise<CheckResult>;
  diff(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<DiffResult>;
  create(properties: Record<string, unknown>): Promise<{ id: string; outs: Record<string, unknown> }>;
  read(id: string, properties: Record<string, unknown>): Promise<{ id: string; props: Record<string, unknown> }>;
  update(id: string, olds: Record<string, unknown>, news: Record<string, unknown>): Promise<{ outs: Record<string, unknown> }>;
  delete(id: string, properties: Record<string, unknown>): Promise<void>;
}

export interface DynamicProviderHost {
  provider(text: string, type?: string): HostedProvider;
  /** What the plugin printed on stderr so far (it logs check/read/delete errors there). */
  stderr(): string;
  stop(): Promise<void>;
}

/** The error a provider method's failure becomes on the engine's side: the gRPC status details (the message). */
export class EngineError extends Error {}

export async function startDynamicProviderHost(): Promise<DynamicProviderHost> {
  // The SDK's own modules, so the Struct/gRPC encoding is exactly the plugin's.
  const grpc: typeof import("@grpc/grpc-js") = require("@grpc/grpc-js");
  const provproto = require("@pulumi/pulumi/proto/provider_pb");
  const provrpc = require("@pulumi/pulumi/proto/provider_grpc_pb");
  const structproto = require("google-protobuf/google/protobuf/struct_pb");

  // The plugin's only argument is the engine address; it does not call back for these methods.
  const child: ChildProcess = spawn(process.execPath, [require.resolve("@pulumi/pulumi/cmd/dynamic-provider"), "127.0.0.1:1"], {
    cwd: projectDir,
    stdio: ["ignore", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr!.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const port = await new Promise<number>((resolve, reject) => {
    let stdout = "";
    child.once("exit", (code) => reject(new Error(`dynamic-provider exited with ${code}: ${stderr}`)));
    child.stdout!.on("data", (chunk: Buffer) => {
      stdout += chunk.toString("utf8");
      const match = /^(\d+)\s/.exec(stdout);
      if (match) resolve(Number(match[1]));
    });
  });
  const client = new provrpc.ResourceProviderClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure());

  const call = <T>(method: string, request: unknown): Promise<T> =>
    new Promise((resolve, reject) => {
      client[method](request, (error: (Error & { details?: string }) | null, response: T) => {
        if (error) reject(new EngineError(error.details ?? error.message));
        else resolve(response);
      });
    });
  const configure = new provproto.ConfigureRequest();
  configure.setArgs(structproto.Struct.fromJavaScript({}));
  await call("configure", configure);

  const struct = (value: Record<string, unknown>) => structproto.Struct.fromJavaScript(JSON.parse(JSON.stringify(value)));
  const withoutProvider = (value: Record<string, unknown>) => {
    const { __provider: _provider, ...rest } = value;
    return rest;
  };

  return {
    provider(text: string, type = "Resource"): HostedProvider {
      const urn = `${urnPrefix}:${type}::test`;
      const bag = (properties: Record<string, unknown>) => struct({ ...properties, __provider: text });
      return {
        async check(olds, news) {
          const request = new provproto.CheckRequest();
          request.setUrn(urn);
          request.setOlds(Object.keys(olds).length === 0 ? struct({}) : bag(olds));
          request.setNews(bag(news));
          const response = await call<any>("check", request);
          return {
            inputs: withoutProvider(response.getInputs().toJavaScript()),
            failures: response.getFailuresList().map((failure: any) => ({ property: failure.getProperty(), reason: failure.getReason() })),
          };
        },
        async diff(id, olds, news) {
          const request = new provproto.DiffRequest();
          request.setId(id);
          request.setUrn(urn);
          request.setOlds(bag(olds));
          request.setNews(bag(news));
          const response = await call<any>("diff", request);
          const kinds = provproto.DiffResponse.DiffChanges;
          const changes = response.getChanges() === kinds.DIFF_SOME ? "some" : response.getChanges() === kinds.DIFF_NONE ? "none" : "unknown";
          return { changes, replaces: response.getReplacesList(), deleteBeforeReplace: response.getDeletebeforereplace() };
        },
        async create(properties) {
          const request = new provproto.CreateRequest();
          request.setUrn(urn);
          request.setProperties(bag(properties));
          const response = await call<any>("create", request);
          return { id: response.getId(), outs: withoutProvider(response.getProperties().toJavaScript()) };
        },
        async read(id, properties) {
          const request = new provproto.ReadRequest();
          request.setId(id);
          request.setUrn(urn);
          request.setProperties(bag(properties));
          const response = await call<any>("read", request);
          return { id: response.getId(), props: withoutProvider(response.getProperties()?.toJavaScript() ?? {}) };
        },
        async update(id, olds, news) {
          const request = new provproto.UpdateRequest();
          request.setId(id);
          request.setUrn(urn);
          request.setOlds(bag(olds));
          request.setNews(bag(news));
          const response = await call<any>("update", request);
          return { outs: withoutProvider(response.getProperties().toJavaScript()) };
        },
        async delete(id, properties) {
          const request = new provproto.DeleteRequest();
          request.setId(id);
          request.setUrn(urn);
          request.setProperties(bag(properties));
          await call("delete", request);
        },
      };
    },
    stderr: () => stderr,
    async stop() {
      client.close();
      if (child.exitCode === null) {
        const exited = new Promise((resolve) => child.once("exit", resolve));
        child.kill("SIGTERM");
        await exited;
      }
    },
  };
}
