// The throttled test origin (test/support/origin.ts) in a process of its own, listening on
// a given local address (origin.ts's listens on 127.0.0.1 only, which another network
// namespace cannot reach). The same file is the child (`node --import tsx origin-at.ts
// <host> <bytes/s> [ranges]`, driven over IPC) and its driver, startOriginAt().
// When origin.ts takes a host, this file can go.
import { fork } from "node:child_process";
import { fileURLToPath } from "node:url";
import { startOrigin } from "../../test/support/origin.js";
import { isMain, ROOT } from "./env.js";
import type { BenchOrigin, OriginRequest, OriginStats } from "./origin.js";
import { withTimeout } from "./proc.js";

type Msg = OriginRequest & { id: number };
type Reply = { id: number; value?: unknown; error?: string };

async function child(): Promise<void> {
  const [host, rate, ranges] = [process.argv[2]!, Number(process.argv[3]), process.argv[4] === "ranges"];
  const origin = await startOrigin({ host, ranges, ...(rate > 0 ? { rate } : {}) });
  const answer = async (m: OriginRequest): Promise<unknown> => {
    if (m.op === "putFile") return origin.putFile(m.path, m.file);
    if (m.op === "stats") return { ...origin.stats };
    origin.rate = m.rate > 0 ? m.rate : undefined;
    return { rate: m.rate };
  };
  process.on("message", (m: Msg) => {
    answer(m).then((value) => process.send!({ id: m.id, value }), (err: Error) => process.send!({ id: m.id, error: err.message }));
  });
  process.on("disconnect", () => process.exit(0));
  process.send!({ id: 0, value: { port: origin.port } });
}

/** The origin on `host` (a local address), `bytesPerSecond` per response (0: unthrottled). */
export async function startOriginAt(host: string, bytesPerSecond: number, opts: { ranges?: boolean } = {}): Promise<BenchOrigin> {
  const proc = fork(fileURLToPath(import.meta.url), [host, String(bytesPerSecond), ...(opts.ranges ? ["ranges"] : [])], {
    execArgv: ["--import", "tsx"], cwd: ROOT, stdio: ["ignore", "inherit", "inherit", "ipc"],
  });
  const kill = () => proc.kill("SIGKILL");
  process.once("exit", kill);
  const pending = new Map<number, (r: Reply) => void>();
  let next = 1;
  proc.on("message", (r: Reply) => {
    pending.get(r.id)?.(r);
    pending.delete(r.id);
  });
  proc.once("exit", (code) => {
    for (const p of pending.values()) p({ id: -1, error: `origin process exited (${code})` });
    pending.clear();
  });
  const reply = (id: number) => new Promise<unknown>((resolve, reject) => pending.set(id, (r) => (r.error ? reject(new Error(`origin: ${r.error}`)) : resolve(r.value))));
  const call = <T>(m: OriginRequest): Promise<T> => {
    const id = next++;
    const p = reply(id);
    proc.send({ ...m, id });
    return withTimeout(p as Promise<T>, 300_000, `origin ${m.op}`);
  };
  const { port } = (await withTimeout(reply(0), 30_000, "starting the origin")) as { port: number };
  return {
    port,
    pid: proc.pid!,
    url: (path) => `http://${host}:${port}${path}`,
    putFile: (path, file) => call({ op: "putFile", path, file }),
    stats: () => call<OriginStats>({ op: "stats" }),
    setRate: async (rate) => void (await call({ op: "rate", rate })),
    stop: async () => {
      process.removeListener("exit", kill);
      if (proc.exitCode !== null) return;
      const gone = new Promise((r) => proc.once("exit", r));
      proc.kill("SIGTERM");
      await gone;
    },
  };
}

if (isMain(import.meta.url) && process.send) await child();
