/**
 * A container's configuration, as pve-container src/PVE/LXC/Config.pm describes it (`$confdesc`, `$netconf_desc`,
 * `$rootfs_desc`, `$features_desc`): the keys an API call may set, the JSON type each value has in `GET …/config`,
 * and the property-string formats the twin reads (`netN`, `rootfs`, `features`, `startup`).
 */
import { parameterError } from "./errors";
import { parsePropertyString, printPropertyString, type PropertyFormat } from "./property-string";

export type ConfigValue = string | number;
export type ContainerConfig = Record<string, ConfigValue>;
type ValueType = "string" | "integer" | "number" | "boolean";

/** `$confdesc` (plus `netN`, `mpN`, `devN`, `unusedN`): each key's type. */
const configTypes: Record<string, ValueType> = {
  lock: "string", onboot: "boolean", startup: "string", template: "boolean", arch: "string", ostype: "string",
  console: "boolean", tty: "integer", cores: "integer", cpulimit: "number", cpuunits: "integer", memory: "integer",
  swap: "integer", hostname: "string", description: "string", searchdomain: "string", nameserver: "string",
  timezone: "string", rootfs: "string", cmode: "string", entrypoint: "string", protection: "boolean",
  unprivileged: "boolean", features: "string", env: "string", hookscript: "string", tags: "string", debug: "boolean",
};

/** The type of config key `key`, or undefined when Proxmox has no such option (`option_exists`). */
export function configType(key: string): ValueType | undefined {
  if (/^(net|mp|dev|unused)\d+$/.test(key)) return "string";
  return configTypes[key];
}

/** pve-common PVE/JSONSchema.pm `check_type`: a form value as its JSON type, or the verification error text. */
export function typedValue(type: ValueType, text: string): { value: ConfigValue } | { error: string } {
  switch (type) {
    case "string":
      return { value: text };
    case "integer":
      return /^-?\d+$/.test(text) ? { value: Number(text) } : { error: `type check ('integer') failed - got '${text}'` };
    case "number":
      return /^-?(\d+\.?\d*|\.\d+)$/.test(text) ? { value: Number(text) } : { error: `type check ('number') failed - got '${text}'` };
    case "boolean":
      if (/^(1|on|yes|true)$/i.test(text)) return { value: 1 };
      if (/^(0|off|no|false)$/i.test(text)) return { value: 0 };
      return { error: `type check ('boolean') failed - got '${text}'` };
    default: {
      const never: never = type;
      throw new Error(`unknown type ${String(never)}`);
    }
  }
}

export const netFormat: PropertyFormat = {
  required: ["name"],
  keys: ["type", "name", "bridge", "hwaddr", "mtu", "ip", "gw", "ip6", "gw6", "firewall", "tag", "trunks", "rate", "link_down", "host-managed"],
};
export const rootfsFormat: PropertyFormat = {
  defaultKey: "volume",
  keys: ["volume", "size", "acl", "mountoptions", "idmap", "ro", "quota", "replicate", "shared"],
};
/** `mpN`: a root disk's keys plus the mount path and the backup flag (`$mp_desc`). */
export const mountpointFormat: PropertyFormat = { ...rootfsFormat, keys: [...rootfsFormat.keys, "mp", "backup"] };
export const featuresFormat: PropertyFormat = { keys: ["mount", "nesting", "keyctl", "fuse", "mknod", "force_rw_sys"] };
export const startupFormat: PropertyFormat = { defaultKey: "order", keys: ["order", "up", "down"] };

/**
 * Checks and normalizes the values Proxmox parses when it stores them (Config.pm `update_pct_config`,
 * `parse_lxc_network`): a NIC is stored re-printed, with `type=veth` and a MAC address when it had none; other
 * property strings (`features`, `startup`, mount points) must parse and are stored as given.
 * Returns the per-key errors.
 */
export function normalizeConfig(values: ContainerConfig, newMac: () => string): Record<string, string> {
  const errors: Record<string, string> = {};
  for (const [key, value] of Object.entries(values)) {
    try {
      if (/^net\d+$/.test(key)) {
        const nic = parsePropertyString(String(value), netFormat);
        nic.type = "veth";
        nic.hwaddr ??= newMac();
        values[key] = printPropertyString(nic, netFormat);
      } else if (key === "features") {
        parsePropertyString(String(value), featuresFormat);
      } else if (key === "startup") {
        parsePropertyString(String(value), startupFormat);
      } else if (key === "rootfs" || /^mp\d+$/.test(key)) {
        parsePropertyString(String(value), rootfsFormat);
      }
    } catch (error) {
      errors[key] = (error as Error).message;
    }
  }
  return errors;
}

/**
 * A description as Proxmox reads it back: the config file keeps it as `#` comment lines (pve-container
 * src/PVE/LXC/Config.pm `write_pct_config`: one `#<line>` per line of Perl's `split(/\n/)`, which drops trailing
 * empty lines), and `parse_pct_config` appends "\n" to every line it reads, so "a\nb" comes back as "a\nb\n"
 * (bpg's `description` StateFunc expects that newline).
 */
export function storedDescription(text: string): string {
  const lines = text.split("\n");
  while (lines.length > 0 && lines[lines.length - 1] === "") lines.pop();
  return lines.map((line) => `${line}\n`).join("");
}

/** Form parameters → typed config values; unknown keys and bad values are 400s, all reported together. */
export function configFromParameters(parameters: Record<string, string>, keys: string[]): ContainerConfig {
  const config: ContainerConfig = {};
  const errors: Record<string, string> = {};
  for (const key of keys) {
    const type = configType(key);
    if (!type) {
      errors[key] = "property is not defined in schema and the schema does not allow additional properties";
      continue;
    }
    const typed = typedValue(type, parameters[key]!);
    if ("error" in typed) errors[key] = typed.error;
    else config[key] = key === "description" ? storedDescription(String(typed.value)) : typed.value;
  }
  if (Object.keys(errors).length) throw parameterError(errors);
  return config;
}

/** A size in bytes as Proxmox prints it in a mount point (`8G`, `512M`; JSONSchema.pm `format_size`). */
export function formatSize(bytes: number): string {
  const units: [string, number][] = [["T", 1024 ** 4], ["G", 1024 ** 3], ["M", 1024 ** 2], ["K", 1024]];
  for (const [unit, factor] of units) {
    if (bytes % factor === 0 && bytes >= factor) return `${bytes / factor}${unit}`;
  }
  return String(bytes);
}

/** `8G`, `4096M`, `10` (GiB when no unit in a disk size) → bytes (JSONSchema.pm `parse_size`). */
export function parseSize(text: string): number | null {
  const match = /^(\d+(?:\.\d+)?)([KMGT])?$/.exec(text);
  if (!match) return null;
  const factor = { K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 }[match[2] ?? "G"] ?? 1024 ** 3;
  return Math.round(Number(match[1]) * factor);
}
