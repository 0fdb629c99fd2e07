// One run's moving parts for bench/peers-nics.ts: the injected init container's curl for a
// pod on a node (decide() with the benchmark's policy, $(NODE_IP) and the projected token
// path filled in as the kubelet would), the pods of every node started at one moment
// (pods-child.ts in each node's namespace), the machine's busy CPU time, a cache's last fill.
import type { V1Pod } from "@kubernetes/client-node";
import { spawn } from "node:child_process";
import { readFileSync, statSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import type { Policy } from "../../src/policy/schema.js";
import { cacheKey, objectDir, OBJECT_FILE, RESERVED } from "../../src/shared/protocol.js";
import { decide } from "../../src/webhook/decide.js";
import { ROOT } from "./env.js";
import type { NicCaches } from "./nic-caches.js";
import { withTimeout } from "./proc.js";

/** curl's argv of the init container decide() injects for `url` into a pod on the node at `nodeIp`. */
export function clientArgs(policy: Policy, url: string, sha256: string, nodeIp: string, tokenFile: string): string[] {
  const pod: V1Pod = {
    apiVersion: "v1", kind: "Pod",
    metadata: { name: "bench", namespace: "default", annotations: { "cache.io/files": `${url}#sha256=${sha256}` } },
    spec: { containers: [{ name: "app", image: "registry.example.com/app:1.0" }] },
  };
  const d = decide(pod, policy, { namespace: "default", copyOnly: false });
  if (d.action !== "mutate") throw new Error(`decide() did not inject the benchmark pod: ${JSON.stringify(d)}`);
  const init = d.pod.spec?.initContainers?.find((c) => c.name === RESERVED.initContainer);
  if (!init?.args || init.command?.[0] !== "curl") throw new Error("the injected pod has no curl init container");
  const tokenVolume = d.pod.spec?.volumes?.find((v) => v.projected?.sources?.some((s) => s.serviceAccountToken));
  const mount = init.volumeMounts?.find((m) => m.name === tokenVolume?.name);
  const tokenPath = tokenVolume && mount ? `${mount.mountPath}/${tokenVolume.projected!.sources!.find((s) => s.serviceAccountToken)!.serviceAccountToken!.path}` : undefined;
  if (!tokenPath || !init.args.some((a) => a.includes(tokenPath))) throw new Error("the injected init container reads no projected token (identity required?)");
  return init.args.map((a) => a.replaceAll(`$(${RESERVED.nodeIpEnv})`, nodeIp).replace(tokenPath, tokenFile));
}

export interface PodsResult {
  /** ms from the common start until each pod's curl returned with the file complete (sorted). */
  clientMs: number[];
  /** Per member node: ms until its last pod had the file (NaN: none did). */
  perNodeLastMs: number[];
  failed: number;
  /** Failures not expected (a pod whose own node cache was not killed). */
  errors: string[];
  wallMs: number;
}

interface Ended {
  code: number;
  end: number;
  err: string;
}

/**
 * Start each member's pods-child.ts in its namespace, wait until all are ready, then let
 * them all go at once (`onGo(t0)` first, t0 = Date.now()); each pod is done when its curl
 * exited 0 and the file in the node's root has `size` bytes.
 */
export async function runPods(h: NicCaches, members: number[], args: string[][], perNode: number, size: number, o: { onGo(t0: number): void; expectFail?: number }): Promise<PodsResult> {
  const children = members.map((i) => {
    const b64 = Buffer.from(JSON.stringify(args[i])).toString("base64");
    const c = spawn("ip", ["netns", "exec", h.nodes[i]!.netns, process.execPath, "--import", "tsx", join(ROOT, "bench", "lib", "pods-child.ts"), String(perNode), b64], { cwd: ROOT, stdio: ["pipe", "pipe", "inherit"] });
    const lines = createInterface({ input: c.stdout! });
    const ended: Ended[] = [];
    const ready = new Promise<void>((resolve, reject) => {
      lines.on("line", (l) => (l === "ready" ? resolve() : ended.push(JSON.parse(l) as Ended)));
      c.once("exit", (code) => reject(new Error(`node ${i + 1}'s pods exited (${code}) before they were ready`)));
    });
    const exited = new Promise<void>((resolve) => lines.once("close", resolve));
    return { c, ready, exited, ended };
  });
  const kill = () => children.forEach((c) => c.c.exitCode === null && c.c.kill("SIGKILL"));
  process.once("exit", kill);
  try {
    await withTimeout(Promise.all(children.map((c) => c.ready)), 120_000, "starting the pods");
    const t0 = Date.now();
    o.onGo(t0);
    for (const c of children) c.c.stdin!.write("go\n");
    await withTimeout(Promise.all(children.map((c) => c.exited)), 900_000, "the pods");
    const wallMs = Date.now() - t0;
    const clientMs: number[] = [];
    const perNodeLastMs: number[] = [];
    const errors: string[] = [];
    let failed = 0;
    members.forEach((i, j) => {
      let last = NaN;
      for (const e of children[j]!.ended) {
        const problem = e.code !== 0 ? `curl exited ${e.code}: ${e.err.trim()}` : sizeProblem(h, i, args[i]!, size);
        if (problem) {
          failed++;
          if (i !== o.expectFail) errors.push(`node-${i + 1}: ${problem}`);
          continue;
        }
        clientMs.push(e.end - t0);
        last = Number.isFinite(last) ? Math.max(last, e.end - t0) : e.end - t0;
      }
      perNodeLastMs.push(last);
    });
    return { clientMs: clientMs.sort((a, b) => a - b), perNodeLastMs, failed, errors, wallMs };
  } finally {
    process.removeListener("exit", kill);
    for (const c of children) c.c.stdin!.end(); // stops the curls of a pods-child that still runs
  }
}

/** Mount mode: the file the pod would mount, in node i's root, must have `size` bytes. */
function sizeProblem(h: NicCaches, i: number, args: string[], size: number): string | undefined {
  const ensure = args[args.length - 1]!;
  const url = new URL(ensure).searchParams.get("url")!;
  const file = join(objectDir(h.root(i), cacheKey(url)), OBJECT_FILE);
  try {
    const got = statSync(file).size;
    return got === size ? undefined : `${file} has ${got} bytes, not ${size}`;
  } catch {
    return `${file} is missing after ensure returned`;
  }
}

/** Milliseconds of CPU the whole machine spent busy (not idle, not waiting for I/O), from /proc/stat. */
export function busyMs(): number {
  const f = readFileSync("/proc/stat", "utf8").split("\n")[0]!.split(/\s+/).slice(1).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = f as [number, number, number, number, number, number, number, number];
  return (user + nice + system + irq + softirq + steal) * 10;
}

/** The last "fill done" line of a cache's log (each run starts the caches anew): ms and where from. */
export function lastFill(log: string): { ms: number; from: string } {
  const line = log.split("\n").filter((l) => l.includes('"fill done"')).pop() ?? "";
  return { ms: Number(/"seconds":([\d.]+)/.exec(line)?.[1] ?? NaN) * 1000, from: /"from":"([^"]*)"/.exec(line)?.[1] ?? "none" };
}
