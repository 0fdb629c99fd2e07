// Start `cache-io cache` as the DaemonSet runs it, in a process group of its own, and
// make sure every started process is gone after the test file, also when a test fails.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { createInterface } from "node:readline";

export interface CacheProcess {
  proc: ChildProcess;
  url: string;
  /** Every JSON log line so far. */
  logs: Record<string, unknown>[];
}

const started = new Set<ChildProcess>();

/** Resolves with the port from the `cache listening` log line. */
export async function spawnCache(args: string[], env: Record<string, string> = {}): Promise<CacheProcess> {
  const proc = spawn(process.execPath, ["dist/cli/main.js", "cache", "--host", "127.0.0.1", "--port", "0", ...args], {
    env: { ...process.env, LOG_LEVEL: "info", ...env },
    stdio: ["ignore", "pipe", "inherit"],
    detached: true, // its own process group: killGroup() reaches anything it starts too
  });
  started.add(proc);
  proc.once("exit", () => started.delete(proc));
  const logs: Record<string, unknown>[] = [];
  const lines = createInterface({ input: proc.stdout! });
  return new Promise((resolve, reject) => {
    lines.on("line", (line) => {
      let log: Record<string, unknown>;
      try {
        log = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      logs.push(log);
      if (log.msg === "cache listening") resolve({ proc, url: `http://127.0.0.1:${String(log.port)}`, logs });
    });
    proc.once("exit", (code) => reject(new Error(`the cache exited (code ${code}) before it listened`)));
  });
}

/** Signal the whole process group of `proc` (no-op when it has exited). */
export function killGroup(proc: ChildProcess, signal: NodeJS.Signals = "SIGKILL"): void {
  if (proc.exitCode !== null || proc.signalCode !== null || proc.pid === undefined) return;
  try {
    process.kill(-proc.pid, signal);
  } catch {
    // already gone
  }
}

/** For afterAll: SIGKILL every cache process still running and wait for each to exit. */
export async function killAll(): Promise<void> {
  await Promise.all(
    [...started].map(async (p) => {
      const exited = p.exitCode !== null || p.signalCode !== null ? Promise.resolve() : once(p, "exit");
      killGroup(p);
      await exited;
    }),
  );
}
