// Processes of the test nodes: each in its own process group (a stop also ends what it
// forked), output to a log file, a readiness poll that names the component and shows
// its log on timeout, and small helpers to run a command and get its output.
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync } from "node:fs";
import { createServer } from "node:net";
import { join } from "node:path";

export interface Proc {
  name: string;
  child: ChildProcess;
  log: string;
  exited: Promise<number | null>;
}

export function startProc(name: string, bin: string, args: string[], logDir: string, env: NodeJS.ProcessEnv = {}): Proc {
  const log = join(logDir, `${name}.log`);
  const fd = openSync(log, "a");
  const child = spawn(bin, args, { detached: true, stdio: ["ignore", fd, fd], env: { ...process.env, ...env } });
  closeSync(fd);
  const exited = new Promise<number | null>((resolve) => {
    child.on("exit", (code, signal) => resolve(code ?? (signal ? -1 : null)));
    child.on("error", () => resolve(-1));
  });
  return { name, child, log, exited };
}

export function alive(p: Proc): boolean {
  return p.child.exitCode === null && p.child.signalCode === null;
}

function signalGroup(p: Proc, signal: NodeJS.Signals): void {
  try {
    process.kill(-p.child.pid!, signal);
  } catch {
    // the group is gone already
  }
}

/** SIGTERM the process group, SIGKILL it after graceMs. */
export async function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  if (!p.child.pid) return;
  if (alive(p)) {
    signalGroup(p, "SIGTERM");
    await Promise.race([p.exited, new Promise((r) => setTimeout(r, graceMs))]);
  }
  signalGroup(p, "SIGKILL");
  await Promise.race([p.exited, new Promise((r) => setTimeout(r, 3000))]);
}

/** Synchronous last resort (process "exit" handlers cannot await). */
export function killNow(p: Proc): void {
  if (p.child.pid) signalGroup(p, "SIGKILL");
}

export function tail(file: string, lines = 30): string {
  try {
    return readFileSync(file, "utf8").trimEnd().split("\n").slice(-lines).join("\n");
  } catch {
    return "(no log)";
  }
}

/** Poll `check` until it returns a value; fail with the component's log tail if it exits or times out. */
export async function waitFor<T>(what: string, check: () => Promise<T | undefined>, opts: { timeoutMs: number; proc?: Proc; intervalMs?: number }): Promise<T> {
  const deadline = Date.now() + opts.timeoutMs;
  let lastError = "";
  for (;;) {
    if (opts.proc && !alive(opts.proc)) {
      throw new Error(`${opts.proc.name} exited (code ${opts.proc.child.exitCode}) before ${what}; its log (${opts.proc.log}):\n${tail(opts.proc.log)}`);
    }
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) {
      const log = opts.proc ? `\n${opts.proc.name}'s log (${opts.proc.log}):\n${tail(opts.proc.log)}` : "";
      throw new Error(`timed out after ${opts.timeoutMs / 1000} s waiting for ${what}${lastError ? ` (last error: ${lastError})` : ""}${log}`);
    }
    await new Promise((r) => setTimeout(r, opts.intervalMs ?? 500));
  }
}

/** A TCP port free on `host` right now (the OS picks it). */
export function freePort(host = "127.0.0.1"): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a command without a shell; never throws (the caller decides what a failure means). */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const c = execFile(cmd, args, { timeout: opts.timeoutMs ?? 60_000, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === "number" ? ((err as { code: number }).code) : -1) : 0;
      resolve({ code, stdout: String(stdout), stderr: String(stderr) || (err && code === -1 ? err.message : "") });
    });
    if (opts.input !== undefined) c.stdin?.end(opts.input);
  });
}

/** run(), but throws with the command and its stderr unless it exits 0. */
export async function must(cmd: string, args: string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} exited ${r.code}: ${(r.stderr || r.stdout).trim().slice(0, 2000)}`);
  return r.stdout;
}
