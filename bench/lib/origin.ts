// The benchmark side of the origin: start origin-child.ts, serve files from disk,
// read its counters (bytes it actually sent) and change its rate.
import { fork, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { ROOT } from "./env.js";
import { withTimeout } from "./proc.js";

export type OriginRequest =
  | { op: "putFile"; path: string; file: string }
  | { op: "stats" }
  | { op: "rate"; rate: number };

export interface OriginStats {
  gets: number;
  bytesSent: number;
}

export interface BenchOrigin {
  port: number;
  pid: number;
  url(path: string): string;
  putFile(path: string, file: string): Promise<{ sha256: string; size: number }>;
  stats(): Promise<OriginStats>;
  setRate(bytesPerSecond: number): Promise<void>;
  stop(): Promise<void>;
}

interface Reply {
  id: number;
  value?: unknown;
  error?: string;
}

/** `bytesPerSecond` per response (0: unthrottled); `ranges` serves byte ranges (206). */
export async function startBenchOrigin(bytesPerSecond: number, opts: { ranges?: boolean } = {}): Promise<BenchOrigin> {
  const child: ChildProcess = fork(join(ROOT, "bench", "lib", "origin-child.ts"), [String(bytesPerSecond), ...(opts.ranges ? ["ranges"] : [])], {
    execArgv: ["--import", "tsx"],
    cwd: ROOT,
    stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  process.once("exit", () => child.kill("SIGKILL"));
  const pending = new Map<number, { resolve(v: unknown): void; reject(e: Error): void }>();
  let next = 1;
  const ready = new Promise<unknown>((resolve, reject) => pending.set(0, { resolve, reject }));
  child.on("message", (r: Reply) => {
    const p = pending.get(r.id);
    pending.delete(r.id);
    if (r.error) p?.reject(new Error(`origin: ${r.error}`));
    else p?.resolve(r.value);
  });
  child.once("exit", (code) => {
    for (const p of pending.values()) p.reject(new Error(`origin process exited (${code})`));
    pending.clear();
  });
  const call = <T>(m: OriginRequest): Promise<T> =>
    withTimeout(
      new Promise<T>((resolve, reject) => {
        const id = next++;
        pending.set(id, { resolve: resolve as (v: unknown) => void, reject });
        child.send({ ...m, id });
      }),
      300_000,
      `origin ${m.op}`,
    );
  const { port } = (await withTimeout(ready, 20_000, "starting the origin")) as { port: number };
  return {
    port,
    pid: child.pid!,
    url: (path) => `http://127.0.0.1:${port}${path}`,
    putFile: (path, file) => call({ op: "putFile", path, file }),
    stats: () => call({ op: "stats" }),
    setRate: async (rate) => void (await call({ op: "rate", rate })),
    stop: async () => {
      if (child.exitCode !== null) return;
      const gone = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await gone;
    },
  };
}
