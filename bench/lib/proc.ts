// Child processes for benchmarks: spawned without a shell, output to a log file, every
// one killed (and every temp dir removed) when the benchmark exits, also on error or signal.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";

const live = new Map<ChildProcess, NodeJS.Signals>();
const tempDirs = new Set<string>();

function killAll(): void {
  for (const [child, signal] of live) if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  live.clear();
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
  tempDirs.clear();
}

process.on("exit", killAll);
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.once(signal, () => {
    killAll();
    process.exit(130);
  });
}

export interface Child {
  proc: ChildProcess;
  pid: number;
  log: string;
  /** SIGTERM, then SIGKILL after `graceMs`; resolves when the process is gone. */
  stop(graceMs?: number): Promise<void>;
}

export interface SpawnOptions {
  env?: Record<string, string>;
  cwd?: string;
  /** Where stdout and stderr go (a file the caller can read); default: a temp file. */
  log?: string;
  /** Signal sent if the benchmark exits while this process runs (default SIGKILL). */
  exitSignal?: NodeJS.Signals;
}

let started = 0;
let logs: string | undefined;

function logDir(): string {
  if (!logs) tempDirs.add((logs = mkdtempSync(join(tmpdir(), "cache-io-bench-logs-"))));
  return logs;
}

/** Start a long-running process; its stdout and stderr go to a file, never a pipe we must drain. */
export function start(cmd: string, args: string[], opts: SpawnOptions = {}): Child {
  const log = opts.log ?? join(logDir(), `${cmd.split("/").pop()}-${++started}.log`);
  const fd = openSync(log, "a");
  const proc = spawn(cmd, args, { cwd: opts.cwd, env: { ...process.env, ...opts.env }, stdio: ["ignore", fd, fd] });
  closeSync(fd);
  if (proc.pid === undefined) throw new Error(`could not start ${cmd}`);
  live.set(proc, opts.exitSignal ?? "SIGKILL");
  const exited = new Promise<void>((resolve) => proc.once("exit", () => (live.delete(proc), resolve())));
  return {
    proc,
    pid: proc.pid,
    log,
    stop: async (graceMs = 5000) => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      proc.kill("SIGTERM");
      const timer = setTimeout(() => proc.kill("SIGKILL"), graceMs);
      await exited;
      clearTimeout(timer);
    },
  };
}

/** Poll a child's log until `pattern` matches; fail with the log's tail if it exits or times out. */
export async function waitForLog(child: Child, pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const text = readFileSync(child.log, "utf8");
    const m = text.match(pattern);
    if (m) return m;
    const dead = child.proc.exitCode !== null || child.proc.signalCode !== null;
    if (dead || Date.now() > deadline) {
      throw new Error(`${dead ? "process exited" : `no ${pattern} within ${timeoutMs} ms`}; log ${child.log}:\n${text.slice(-2000)}`);
    }
    await sleep(25);
  }
}

export const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

export interface RunResult {
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run a command to completion (no shell), bounded by `timeoutMs`; rejects on a non-zero exit. */
export function run(cmd: string, args: string[], timeoutMs = 300_000, cwd?: string): Promise<RunResult> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: timeoutMs, killSignal: "SIGKILL", maxBuffer: 64 * 2 ** 20, cwd }, (err, stdout, stderr) => {
      live.delete(child);
      const ms = performance.now() - t0;
      if (err) reject(new Error(`${cmd} ${args.slice(0, 3).join(" ")}... failed after ${ms.toFixed(0)} ms: ${err.message}\n${stderr.slice(-1000)}`));
      else resolve({ stdout, stderr, ms });
    });
    live.set(child, "SIGKILL");
  });
}

/** A temp directory under the system temp dir, removed by cleanupTemp() or at the end of withTemp(). */
export async function tempDir(prefix: string): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), `cache-io-bench-${prefix}-`));
  tempDirs.add(dir);
  return dir;
}

export async function removeTemp(dir: string): Promise<void> {
  tempDirs.delete(dir);
  if (dir === logs) logs = undefined;
  await rm(dir, { recursive: true, force: true });
}

export async function cleanupTemp(): Promise<void> {
  await Promise.all([...tempDirs].map(removeTemp));
}

/** `p`, or a rejection naming `what` after `ms`; the timer never outlives the race. */
export async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} did not finish within ${ms} ms`)), ms)));
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
