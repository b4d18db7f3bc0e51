/**
 * Schema issues → problems: translates zod's issues into NixMox's error grammar (`service "x": field message`),
 * picking the union branch the author meant, suggesting known fields, and never echoing a value that may be a secret.
 * The cross-service rules are in `rules.ts`; `validate.ts` runs both.
 */
import { z } from "zod";
import { describeValue, didYouMean, formatPath, type Problem } from "./problems";
import { manifestSchema } from "./schema";

/** Keys that hold a secret value, which belongs in the stack config, not in the manifest. */
export const secretLikeKey = /(pass(word|wd)?|secret|token|api_?key|private_?key|credential)/i;

/**
 * The command that stores a service secret, its value read from FILE or stdin (`< FILE` left out: pulumi asks without
 * echoing), as `secrets check` prints it: a value on the command line would stay in the shell history (issue 22).
 */
function secretSetLine(service: string, name: string): string {
  return `\`pulumi config set --secret --path 'nixmox:secrets.${service}.${name}' < FILE\``;
}

/** Where the value of a secret found at `path` goes instead, as a `pulumi config set` hint. */
export function secretHint(path: ReadonlyArray<PropertyKey>, key: string): string {
  const [head, name] = path;
  const joined = path.map(String).join(".");
  if (joined === "network.outposts.radius") {
    return "looks like a secret: secret values never go in the manifest. NixMox generates the RADIUS shared secret; to choose it, run " +
      secretSetLine("<authentik service>", "radius_shared_secret");
  }
  const service = (head === "core_services" || head === "services") && name !== undefined ? String(name) : "<service>";
  // interface.db.password (or interface.dbs.<entry>.password): the database's password is a secret NixMox declares and
  // generates itself (resolve.ts passwordSecret), so the fix is to delete the line, not to declare a new secret.
  const inDb = service !== "<service>" && path[2] === "interface" && ((path.length === 4 && path[3] === "db") || (path.length === 5 && path[3] === "dbs"));
  if (inDb) {
    const builtin = path.length === 4 ? "db_password" : `${String(path[4])}_db_password`;
    return `looks like a secret, and needs no field: NixMox generates the password of this database's owner itself, the secret "${builtin}", ` +
      "and delivers it to the host as a file. Delete this line; to choose the password, set that secret in the stack from a file or stdin: " +
      secretSetLine(service, builtin);
  }
  const secretName = service === "<service>" ? "<name>" : key;
  return "looks like a secret: secret values never go in the manifest. Declare it under secrets and set the value from a file or stdin with " +
    secretSetLine(service, secretName);
}

/** True when the value at `path` may be a secret, so no message may echo it. */
function mayHoldSecret(path: ReadonlyArray<PropertyKey>): boolean {
  return path.some((key, index) => (key === "secrets" && index <= 2) || (typeof key === "string" && secretLikeKey.test(key)));
}

function subjectOf(path: ReadonlyArray<PropertyKey>): { subject: string; rest: ReadonlyArray<PropertyKey> } {
  const [head, name, ...rest] = path;
  if (head === "network") return { subject: "network", rest: path.slice(1) };
  if ((head === "core_services" || head === "services") && name !== undefined) {
    return { subject: `service "${String(name)}"`, rest };
  }
  return { subject: "manifest", rest: path };
}

export function valueAt(root: unknown, path: ReadonlyArray<PropertyKey>): unknown {
  let value: unknown = root;
  for (const key of path) {
    if (value === null || typeof value !== "object") return undefined;
    value = (value as Record<PropertyKey, unknown>)[key];
  }
  return value;
}

function expectedText(expected: string): string {
  switch (expected) {
    case "object":
    case "record":
      return "an attribute set";
    case "array":
      return "a list";
    case "string":
      return "a string";
    case "number":
      return "a number";
    case "int":
      return "a whole number";
    case "boolean":
      return "true or false";
    default:
      return expected;
  }
}

/** The schema that validates the value at `path`, for listing the known fields of an object. */
function schemaAt(schema: z.core.$ZodType, path: ReadonlyArray<PropertyKey>, root: unknown, resolveUnion = true): z.core.$ZodType | undefined {
  let current: z.core.$ZodType | undefined = schema;
  const unwrap = (type: z.core.$ZodType | undefined, at: ReadonlyArray<PropertyKey>): z.core.$ZodType | undefined => {
    while (type) {
      const def = type._zod.def as unknown as Record<string, unknown>;
      if (def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable") {
        type = def.innerType as z.core.$ZodType;
      } else if (def.type === "pipe") {
        type = def.in as z.core.$ZodType;
      } else if (def.type === "union") {
        // Pick the branch that fits the value: a plain route, or a set of named routes (see meantBranch).
        const value = valueAt(root, at);
        const options = (def.options as z.core.$ZodType[]).map(unwrapType);
        const keys = value && typeof value === "object" ? Object.keys(value) : [];
        const objects = options.filter((option) => shapeOf(option).length > 0 && overlap(shapeOf(option), keys) > 0);
        const record = options.find((option) => (option._zod.def as unknown as Record<string, unknown>).type === "record");
        type = objects.sort((a, b) => overlap(shapeOf(b), keys) - overlap(shapeOf(a), keys))[0] ?? record ?? options.find((option) => shapeOf(option).length > 0);
        return unwrap(type, at);
      } else {
        return type;
      }
    }
    return type;
  };
  for (let index = 0; index < path.length && current; index += 1) {
    current = unwrap(current, path.slice(0, index));
    const def = current?._zod.def as unknown as Record<string, unknown> | undefined;
    if (!def) return undefined;
    if (def.type === "object") current = (def.shape as Record<string, z.core.$ZodType>)[String(path[index])];
    else if (def.type === "record") current = def.valueType as z.core.$ZodType;
    else if (def.type === "array") current = def.element as z.core.$ZodType;
    else return undefined;
  }
  return resolveUnion ? unwrap(current, path) : current && unwrapType(current);
}

/**
 * The union branch the author meant, told by the value's shape rather than by which branch has fewer errors:
 * for an attribute set, the object branch sharing the most keys with it (a single route has `domain`,
 * `upstream`…), else a record branch (named routes); for anything else, the first non-object branch.
 * Returns that branch's issues, or undefined when nothing tells.
 */
function meantBranch(union: z.core.$ZodType | undefined, value: unknown, errors: z.core.$ZodIssue[][]): z.core.$ZodIssue[] | undefined {
  const def = union?._zod.def as unknown as Record<string, unknown> | undefined;
  if (def?.type !== "union") return undefined;
  const options = (def.options as z.core.$ZodType[]).map((option) => unwrapType(option));
  const typeOf = (option: z.core.$ZodType | undefined) => (option?._zod.def as unknown as Record<string, unknown> | undefined)?.type;
  let index = -1;
  if (value !== null && typeof value === "object" && !Array.isArray(value)) {
    const keys = Object.keys(value);
    let best = 0;
    options.forEach((option, at) => {
      const score = overlap(shapeOf(option), keys);
      if (typeOf(option) === "object" && score > best) [best, index] = [score, at];
    });
    if (index === -1) index = options.findIndex((option) => typeOf(option) === "record");
  } else {
    index = options.findIndex((option) => typeOf(option) !== "object" && typeOf(option) !== "record");
  }
  const chosen = index === -1 ? undefined : errors[index];
  return chosen && chosen.length > 0 ? chosen : undefined;
}

function unwrapType(type: z.core.$ZodType): z.core.$ZodType {
  let current = type;
  for (;;) {
    const def = current._zod.def as unknown as Record<string, unknown>;
    if (def.type === "optional" || def.type === "default" || def.type === "prefault" || def.type === "nullable") current = def.innerType as z.core.$ZodType;
    else if (def.type === "pipe") current = def.in as z.core.$ZodType;
    else return current;
  }
}

function shapeOf(type: z.core.$ZodType | undefined): string[] {
  const def = type?._zod.def as unknown as Record<string, unknown> | undefined;
  return def?.type === "object" ? Object.keys(def.shape as object) : [];
}

function overlap(shape: string[], keys: string[]): number {
  return keys.filter((key) => shape.includes(key)).length;
}

export function issueProblems(issue: z.core.$ZodIssue, prefix: ReadonlyArray<PropertyKey>, raw: unknown): Problem[] {
  const path = [...prefix, ...issue.path];
  const { subject, rest } = subjectOf(path);
  const field = formatPath(rest);
  const value = valueAt(raw, path);
  const got = mayHoldSecret(path) ? "" : `, got ${describeValue(value)}`;
  switch (issue.code) {
    case "unrecognized_keys": {
      const known = shapeOf(schemaAt(manifestSchema, path, raw));
      return issue.keys.map((key) => ({
        subject,
        field: formatPath([...rest, key]),
        message: secretLikeKey.test(key) ? secretHint(path, key) : `is not a known field${didYouMean(key, known)}`,
      }));
    }
    case "invalid_type":
      if (value === undefined) return [{ subject, field, message: "is required" }];
      // `secrets = { db_password = "hunter2"; }`: a value where a declaration belongs. Say where it goes, never echo it.
      if (rest[0] === "secrets" && rest.length === 2 && subject.startsWith("service ")) {
        const service = String(path[1]);
        return [{
          subject,
          field,
          message: `must be a secret declaration (an attribute set such as { owner = "app"; restart_units = [ "app.service" ]; }), not the secret's value; ` +
            `the value goes in the stack config, read from a file or stdin: ${secretSetLine(service, String(rest[1]))}`,
        }];
      }
      return [{ subject, field, message: `must be ${expectedText(issue.expected)}${got}` }];
    case "too_small":
    case "too_big": {
      const bound = issue.code === "too_small" ? issue.minimum : issue.maximum;
      const relation = issue.code === "too_small" ? (issue.inclusive ? "at least" : "more than") : issue.inclusive ? "at most" : "less than";
      const unit = issue.origin === "string" ? " characters long" : issue.origin === "array" ? " items" : "";
      const what = issue.origin === "string" || issue.origin === "array" ? "have" : "be";
      const message =
        issue.origin === "string" && issue.code === "too_small" && Number(bound) === 1
          ? `must not be empty${got}`
          : `must ${what} ${relation} ${String(bound)}${unit}${got}`;
      return [{ subject, field, message }];
    }
    case "invalid_value":
      return [{ subject, field, message: `must be one of ${issue.values.map((v) => JSON.stringify(v)).join(", ")}${got}` }];
    case "invalid_union": {
      if ("discriminator" in issue && issue.discriminator) {
        const options = (issue as unknown as { options?: unknown[] }).options ?? [];
        return [{ subject, field, message: `must be one of ${options.map((v) => JSON.stringify(v)).join(", ")}${got}` }];
      }
      const branches = issue.errors.filter((branch) => branch.length > 0);
      if (branches.length === 0) return [{ subject, field, message: `is not valid${got}` }];
      const meant = meantBranch(schemaAt(manifestSchema, path, raw, false), value, issue.errors);
      const best = meant ?? [...branches].sort((a, b) => a.length - b.length)[0];
      return best.flatMap((inner) => issueProblems(inner, path, raw));
    }
    case "invalid_key":
      return [{ subject, field, message: `has an invalid name: ${issue.issues.map((inner) => inner.message).join("; ")}, got ${describeValue(String(path[path.length - 1]))}` }];
    case "invalid_element":
      return issue.issues.flatMap((inner) => issueProblems(inner, path, raw));
    default:
      return [{ subject, field, message: `${issue.message}${got}` }];
  }
}

