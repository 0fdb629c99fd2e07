// Many pods at once on cold nodes: every pod runs its own init container (curl) against
// its node's cache at the same moment; what the origin sent, when each pod was done,
// and each cache's peak RSS.
import { startCacheProc, type CacheProc } from "./cache.js";
import type { Served } from "./fixture.js";
import { memory } from "./rss.js";
import { initPod, runInit } from "./pod.js";
import { removeTemp, run } from "./proc.js";
import { readFileSync } from "node:fs";
import { join } from "node:path";

export interface CrowdRun {
  pods: number;
  nodes: number;
  /** Bytes the origin sent during the run (its own counter). */
  originBytes: number;
  /** originBytes over the file size. */
  originFiles: number;
  /** ms from the common start until each pod's file was usable, sorted. */
  podMs: number[];
  lastMs: number;
  /** Peak RSS (VmHWM) of each node's cache process, bytes. */
  cacheHwm: number[];
  /** Ensure requests the caches answered beyond one per pod (curl's --retry at work). */
  retries: number;
  /** Each cache's own "fill done" time (origin request to published file), ms. */
  fillMs: number[];
  /** The same number of curls of /healthz started together: what starting the pods costs here, ms. */
  floorMs: number;
}

/** Start `n` curls of the caches' /healthz at once (round-robin); ms until the last exits. */
async function floor(caches: CacheProc[], n: number): Promise<number> {
  const t0 = performance.now();
  await Promise.all(Array.from({ length: n }, (_, i) => run("curl", ["-q", "--silent", "--fail", "-o", "/dev/null", `${caches[i % caches.length]!.url}/healthz`])));
  return performance.now() - t0;
}

/** The `seconds` of the cache's "fill done" log line. */
function fillMs(cache: CacheProc): number {
  const line = readFileSync(cache.child.log, "utf8").split("\n").find((l) => l.includes('"fill done"'));
  return line ? Number(/"seconds":([\d.]+)/.exec(line)?.[1] ?? NaN) * 1000 : NaN;
}

/** Requests a cache answered (hits + misses), from its own /metrics. */
async function requests(cache: CacheProc): Promise<number> {
  const text = await (await fetch(`${cache.url}/metrics`)).text();
  const count = (name: string) => Number(new RegExp(`^cache_io_cache_${name}_total (\\S+)$`, "m").exec(text)?.[1] ?? NaN);
  return count("hits") + count("misses");
}

/** `pods` pods spread round-robin over `nodes` fresh caches, all started together (mount mode). */
export async function crowd(s: Served, pods: number, nodes: number): Promise<CrowdRun> {
  const caches: CacheProc[] = [];
  try {
    for (let i = 0; i < nodes; i++) caches.push(await startCacheProc(`node${i}`));
    const before = (await s.origin.stats()).bytesSent;
    const t0 = performance.now();
    const done = await Promise.all(
      Array.from({ length: pods }, async (_, i) => {
        const cache = caches[i % nodes]!;
        await runInit(initPod(cache.policy, s.url(), s.sha256, "mount", s.dir), s.size);
        return performance.now() - t0;
      }),
    );
    const originBytes = (await s.origin.stats()).bytesSent - before;
    const podMs = done.sort((a, b) => a - b);
    const answered = (await Promise.all(caches.map(requests))).reduce((a, b) => a + b, 0);
    return {
      pods,
      nodes,
      originBytes,
      originFiles: originBytes / s.size,
      podMs,
      lastMs: podMs[podMs.length - 1] ?? NaN,
      cacheHwm: caches.map((c) => memory(c.pid).hwm),
      retries: answered - pods,
      fillMs: caches.map(fillMs),
      floorMs: await floor(caches, pods),
    };
  } finally {
    await Promise.all(caches.map((c) => c.child.stop()));
    await Promise.all(caches.map((c) => removeTemp(join(c.root, ".."))));
  }
}
