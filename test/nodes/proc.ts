// Processes of the test nodes: the control plane's process helpers (each in its own
// process group, output to a log file, a readiness poll that names the component), with
// a longer stop grace for kubelets and containerd, and helpers to run a command.
import { execFile } from "node:child_process";
import { stopProc as stopProcWithGrace, type Proc } from "../cluster/processes.js";

export { freePort, killNow, startProc, waitFor, type Proc } from "../cluster/processes.js";

/** SIGTERM the process group, SIGKILL it after `graceMs` (kubelet and containerd take a while). */
export function stopProc(p: Proc, graceMs = 10_000): Promise<void> {
  return stopProcWithGrace(p, graceMs);
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
