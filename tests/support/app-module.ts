/**
 * Calls one shipped application module (nixos/services/<kind>.nix) with a rendered host's data, through the nixpkgs
 * stand-in (tests/support/nixos-stub.nix), and evaluates a Nix expression over the result with the real
 * nix-instantiate. The module gets the host data as `config.nixmox` (plus the defaults of the options it declares
 * under `nixmox.<section>` that the data lacks, and core's environment-file paths) and the `config.services` values
 * given. This proves the module's own wiring and messages, not nixpkgs' option names or types.
 */
import * as path from "node:path";
import type { HostData } from "../../render";
import { nixEval, shippedNix } from "../golden/render-fixtures";

/** A Nix expression for a JSON value. */
export const nixJson = (value: unknown) => `(builtins.fromJSON ${JSON.stringify(JSON.stringify(value))})`;

const stub = path.join(__dirname, "nixos-stub.nix");

/**
 * Evaluates `select` over the module's result `m`; in scope: `failed` (the messages of the failing assertions),
 * `data`, and `package name mainProgram` for building `services` stand-ins.
 * @param services the `config.services` the module reads, as a Nix attribute set. @default "{ }"
 */
export function evalAppModule(file: string, data: HostData, section: string, select: string, services = "{ }"): unknown {
  return nixEval(`let
    stub = import ${stub};
    data = ${nixJson(data)};
    m = (import ${shippedNix(file)}) { inherit config; inherit (stub) lib pkgs; };
    declared = m.options.nixmox.${section};
    defaults = builtins.listToAttrs (map (name: { inherit name; value = declared.\${name}.default; })
      (builtins.filter (name: (declared.\${name}._type or null) == "stub-option" && declared.\${name} ? default && !(data.${section} ? \${name})) (builtins.attrNames declared)));
    package = name: main: { outPath = "/nix/store/stub-\${name}"; meta.mainProgram = main; };
    config = {
      nixmox = data // {
        ${section} = data.${section} // defaults;
        environmentFiles = builtins.mapAttrs (name: file: file // { path = "/run/nixmox/env/\${name}.env"; }) (m.config.nixmox.environmentFiles or { });
      };
      services = ${services};
    };
    failed = map (a: a.message) (builtins.filter (a: !a.assertion) m.config.assertions);
  in ${select}`);
}
