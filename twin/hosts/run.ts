/** Runs the system tools the twin's hosts are made of (`ip`, `tar`, `ssh-keygen`), failing with their stderr. */
import { execFile } from "node:child_process";

export interface RunResult {
  stdout: string;
  stderr: string;
}

/** Runs `command args…` without a shell; rejects naming the command and quoting its stderr. */
export function run(command: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(command, args, { maxBuffer: 64 * 1024 * 1024, timeout: options.timeoutMs ?? 60_000 }, (error, stdout, stderr) => {
      if (error) {
        const detail = (stderr || error.message).trim();
        reject(new Error(`${command} ${args.join(" ")} failed: ${detail}`));
        return;
      }
      resolve({ stdout, stderr });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

/** `ip …` in network namespace `netns` (`ip -n`), or in this one. */
export function ip(netns: string | null, args: string[]): Promise<RunResult> {
  return run("ip", netns ? ["-n", netns, ...args] : args);
}

/** True when `ip -n netns` finds the namespace. */
export async function netnsExists(netns: string): Promise<boolean> {
  const { stdout } = await run("ip", ["netns", "list"]);
  return stdout.split("\n").some((line) => line.split(" ")[0] === netns);
}
