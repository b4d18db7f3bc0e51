/**
 * Live progress of an engine run, from the engine's events (Automation API `onEvent`; shapes in
 * @pulumi/pulumi/automation/events.d.ts): one line per service with the phase it is in,
 * container → ssh → config → secrets → rebuild → health → ready | failed, and the time since it started, so
 * independent services visibly run side by side. At the end, a summary naming, for each failure, the step, the
 * host and the engine's message with secrets masked. Pure: events in, text out; the caller prints.
 *
 * A service is its `nixmox:index:NixosService` component (named after the service) and the children
 * `<service>-<phase>` (components/nixos-service.ts); resources outside a service (providers, templates,
 * passwords, Authentik objects) only count towards failures.
 */
import type { EngineEvent, StepEventMetadata } from "@pulumi/pulumi/automation/events";

export const phases = ["container", "ssh", "config", "secrets", "rebuild", "health"] as const;
export type Phase = (typeof phases)[number];
export type ServiceState = "waiting" | Phase | "ready" | "unchanged" | "deleted" | "failed";

export interface ServiceProgress {
  service: string;
  state: ServiceState;
  /** The engine's operation on the current step (create, update, replace, delete, refresh, …). */
  op: string | null;
  /** Seconds (engine event timestamps) when the service's first step began, and when it ended. */
  startedAt: number | null;
  endedAt: number | null;
  /** Whether any of its resources changed (an all-`same` service is "unchanged"). */
  changed: boolean;
  failure: { step: string; message: string } | null;
}

export interface Failure {
  /** The service, or the resource's name when it belongs to none. */
  subject: string;
  step: string;
  message: string;
}

const componentType = "nixmox:index:NixosService";

/** Name and qualified type of a URN (`urn:pulumi:<stack>::<project>::<qualified type>::<name>`). */
function parseUrn(urn: string): { qualifiedType: string; name: string } {
  const parts = urn.split("::");
  return { qualifiedType: parts[2] ?? "", name: parts.slice(3).join("::") };
}

/** The service and phase a resource belongs to, if any. */
export function serviceOf(urn: string): { service: string; phase: Phase | null } | null {
  const { qualifiedType, name } = parseUrn(urn);
  const types = qualifiedType.split("$").filter((type) => type !== "pulumi:pulumi:Stack");
  if (types.length === 1 && types[0] === componentType) return { service: name, phase: null };
  if (types.length === 2 && types[0] === componentType) {
    const phase = phases.find((candidate) => name.endsWith(`-${candidate}`));
    if (phase) return { service: name.slice(0, -phase.length - 1), phase };
    // The replacement guard runs just before the container and is part of that step.
    if (name.endsWith("-guard")) return { service: name.slice(0, -"-guard".length), phase: "container" };
  }
  return null;
}

/** Replaces every given secret value (and Pulumi's own `[secret]` stays as it is) with "[secret]". */
export function maskSecrets(text: string, secrets: string[]): string {
  let masked = text;
  for (const secret of [...secrets].filter((value) => value.length >= 4).sort((a, b) => b.length - a.length)) {
    masked = masked.split(secret).join("[secret]");
  }
  return masked;
}

export class ProgressTracker {
  private readonly services = new Map<string, ServiceProgress>();
  private readonly errors = new Map<string, string[]>();
  private readonly general: string[] = [];
  private readonly warnings: string[] = [];
  private readonly failures: Failure[] = [];
  private firstTimestamp: number | null = null;
  private lastTimestamp: number | null = null;
  summaryEvent: EngineEvent["summaryEvent"] | null = null;

  /** `services`: the services expected (all, or the selection), shown as "waiting" until their first event. */
  constructor(services: string[] = []) {
    for (const service of services) this.entry(service);
  }

  private entry(service: string): ServiceProgress {
    let progress = this.services.get(service);
    if (!progress) {
      progress = { service, state: "waiting", op: null, startedAt: null, endedAt: null, changed: false, failure: null };
      this.services.set(service, progress);
    }
    return progress;
  }

  /** Applies one event; returns the service whose line changed, if any. */
  handle(event: EngineEvent): ServiceProgress | null {
    const at = event.timestamp;
    this.firstTimestamp ??= at;
    this.lastTimestamp = at;
    if (event.diagnosticEvent) {
      const diagnostic = event.diagnosticEvent;
      const message = diagnostic.message.trim();
      if (diagnostic.severity === "error") {
        if (diagnostic.urn) this.errors.set(diagnostic.urn, [...(this.errors.get(diagnostic.urn) ?? []), message]);
        else this.general.push(message);
      } else if (diagnostic.severity === "warning" && !this.warnings.includes(message)) {
        // The program's own warnings (e.g. a deploy key missing from the manifest) must not vanish with the raw output.
        this.warnings.push(message);
      }
      return null;
    }
    if (event.summaryEvent) {
      this.summaryEvent = event.summaryEvent;
      return null;
    }
    const step = event.resourcePreEvent ?? event.resOutputsEvent;
    if (step) return this.step(step.metadata, event.resourcePreEvent ? "pre" : "outputs", at);
    if (event.resOpFailedEvent) return this.failed(event.resOpFailedEvent.metadata, at);
    return null;
  }

  private step(metadata: StepEventMetadata, kind: "pre" | "outputs", at: number): ServiceProgress | null {
    const owner = serviceOf(metadata.urn);
    if (!owner) return null;
    const progress = this.entry(owner.service);
    if (progress.state === "failed") return null;
    if (metadata.op !== "same" && metadata.op !== "read") progress.changed = true;
    progress.startedAt ??= at;
    const deleting = metadata.op === "delete" || metadata.op === "discard";
    if (owner.phase === null) {
      // The component's outputs arrive after all its children: the service is done (or gone, on a delete).
      if (kind === "outputs") {
        progress.state = deleting ? "deleted" : progress.changed ? "ready" : "unchanged";
        progress.endedAt = at;
        progress.op = null;
      }
      return progress;
    }
    // Creates and updates move forward through the phases; a destroy walks them backwards.
    if (kind === "pre" && (deleting || phases.indexOf(owner.phase) >= phases.indexOf(progress.state as Phase))) {
      progress.state = owner.phase;
      progress.op = metadata.op;
    }
    return progress;
  }

  private failed(metadata: StepEventMetadata, at: number): ServiceProgress | null {
    const owner = serviceOf(metadata.urn);
    const message = (this.errors.get(metadata.urn) ?? []).join("\n") || "the engine reported the step as failed";
    const { name } = parseUrn(metadata.urn);
    if (!owner) {
      this.failures.push({ subject: name, step: metadata.type, message });
      return null;
    }
    const progress = this.entry(owner.service);
    const step = owner.phase ?? "component";
    progress.state = "failed";
    progress.endedAt = at;
    progress.failure = { step, message };
    this.failures.push({ subject: owner.service, step, message });
    return progress;
  }

  /**
   * After a successful run, services still shown mid-way (a refresh or a targeted run may send no component
   * outputs) are done: ready when something changed, unchanged otherwise.
   */
  complete(): void {
    for (const progress of this.services.values()) {
      if (!phases.includes(progress.state as Phase)) continue;
      progress.state = progress.changed ? "ready" : "unchanged";
      progress.endedAt = this.lastTimestamp;
      progress.op = null;
    }
  }

  all(): ServiceProgress[] {
    return [...this.services.values()].sort((a, b) => (a.service < b.service ? -1 : a.service > b.service ? 1 : 0));
  }

  /** One line per service: name, state (with the operation while running), elapsed seconds. */
  lines(now: number = this.lastTimestamp ?? 0): string[] {
    const rows = this.all();
    const width = Math.max(0, ...rows.map((row) => row.service.length));
    return rows.map((row) => formatLine(row, width, now));
  }

  /** Failures in the order they happened, including resources outside any service. */
  failuresSoFar(): Failure[] {
    return [...this.failures];
  }

  /**
   * The closing summary: counts per state and each failure's step, host and message (secrets masked), plus
   * engine errors that name no resource.
   */
  summary(options: { operation: string; hostOf?: (service: string) => string | undefined; secrets?: string[] }): string {
    const rows = this.all();
    const counts = new Map<string, number>();
    for (const row of rows) counts.set(row.state, (counts.get(row.state) ?? 0) + 1);
    const order: ServiceState[] = ["ready", "unchanged", "deleted", "failed", "waiting", ...phases];
    const parts = order.filter((state) => counts.has(state)).map((state) => `${counts.get(state)} ${phases.includes(state as Phase) ? `stopped at ${state}` : state}`);
    const seconds = this.firstTimestamp !== null && this.lastTimestamp !== null ? this.lastTimestamp - this.firstTimestamp : 0;
    // The engine's own count of resource operations, as `pulumi up` ends with it.
    const changes = Object.entries(this.summaryEvent?.resourceChanges ?? {})
      .filter(([, count]) => (count ?? 0) > 0)
      .map(([op, count]) => `${count} ${op}`);
    const lines = [
      `${options.operation}: ${rows.length} service${rows.length === 1 ? "" : "s"}${parts.length > 0 ? `: ${parts.join(", ")}` : ""} (${seconds}s)` +
        (changes.length > 0 ? `; resources: ${changes.join(", ")}` : ""),
    ];
    const mask = (text: string) => maskSecrets(text, options.secrets ?? []);
    for (const failure of this.failures) {
      const host = options.hostOf?.(failure.subject);
      lines.push(`failed: ${failure.subject}${host ? ` (${host})` : ""} at ${failure.step}: ${indent(mask(failure.message))}`);
    }
    for (const message of this.general) lines.push(`error: ${indent(mask(message))}`);
    for (const message of this.warnings) lines.push(`warning: ${indent(mask(message))}`);
    return lines.join("\n");
  }
}

function indent(text: string): string {
  return text.split("\n").join("\n    ");
}

function formatLine(row: ServiceProgress, width: number, now: number): string {
  const end = row.endedAt ?? now;
  const elapsed = row.startedAt === null ? "" : `${Math.max(0, end - row.startedAt)}s`;
  let state: string;
  if (phases.includes(row.state as Phase)) state = `${row.state}${row.op && row.op !== "same" ? ` (${row.op})` : ""}`;
  else if (row.state === "failed") state = `failed at ${row.failure?.step ?? "?"}`;
  // Its component has registered, none of its steps yet.
  else if (row.state === "waiting" && row.startedAt !== null) state = "starting";
  else state = row.state;
  return `${row.service.padEnd(width)}  ${state.padEnd(22)}${elapsed.padStart(6)}`.trimEnd();
}

/**
 * One status line rewritten in place on a terminal (`\r` and erase-line), for long commands that otherwise stay
 * silent (`preview --offline`, `status`); nothing at all when the stream is not a TTY, so piped output and
 * scripts see only the result.
 */
export function ttyStatusLine(stream: { isTTY?: boolean; write(text: string): unknown }): { update(text: string): void; done(): void } {
  if (!stream.isTTY) return { update: () => undefined, done: () => undefined };
  return {
    update: (text) => {
      stream.write(`\r\u001b[K${text}`);
    },
    done: () => {
      stream.write("\r\u001b[K");
    },
  };
}
