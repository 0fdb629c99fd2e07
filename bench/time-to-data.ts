// Benchmark 1: the seed's experiment on loopback. Time until a large file is usable
// in the "pod": straight from the throttled origin, copied from nginx that already
// has it, and through cache-io (copy and mount mode, warm and cold node).
// Run: npx tsx bench/time-to-data.ts
import { copyFileSync, mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { startCacheProc, type CacheProc } from "./lib/cache.js";
import { buildDist, isMain, main } from "./lib/env.js";
import { finish } from "./lib/finish.js";
import { withServedFile, type Served } from "./lib/fixture.js";
import { makeFile } from "./lib/files.js";
import { startNginx } from "./lib/nginx.js";
import { download, initPod, runInit, type Mode } from "./lib/pod.js";
import { removeTemp, run } from "./lib/proc.js";
import { fmtMs, median, MiB } from "./lib/stats.js";

export interface TimeToDataSettings {
  sizeBytes: number;
  /** Origin throttle, bytes per second. */
  rate: number;
  rounds: number;
  /** The small file of the "regardless of size" check of warm mount mode. */
  smallBytes: number;
}

export const TTD_DEFAULTS: TimeToDataSettings = { sizeBytes: 512 * MiB, rate: 60e6, rounds: 3, smallBytes: 8 * MiB };

export const METHODS = ["origin", "nginx", "copy-warm", "mount-warm", "mount-warm-small", "mount-cold", "copy-cold"] as const;
export type Method = (typeof METHODS)[number];

export interface MethodResult {
  method: Method;
  ms: number[];
  medianMs: number;
  /** Median time over the direct-from-origin median of the same run. */
  vsOrigin: number;
}

export interface TimeToDataResult {
  sizeBytes: number;
  smallBytes: number;
  rate: number;
  methods: MethodResult[];
  /** Median of a curl of the cache's /healthz: what starting curl and one loopback round trip cost. */
  curlFloorMs: number;
}

/** One timed init container run against `cache`; copies are deleted afterwards. */
async function viaCache(cache: CacheProc, s: Served, mode: Mode, url = s.url(), sha = s.sha256, size = s.size): Promise<number> {
  const copyDir = join(s.dir, "emptydir");
  mkdirSync(copyDir, { recursive: true });
  const pod = initPod(cache.policy, url, sha, mode, copyDir);
  try {
    return await runInit(pod, size);
  } finally {
    rmSync(copyDir, { recursive: true, force: true });
  }
}

/** A cold node: a new cache process on an empty root, gone (with its files) afterwards. */
async function cold(s: Served, mode: Mode): Promise<number> {
  const cache = await startCacheProc("cold");
  try {
    return await viaCache(cache, s, mode);
  } finally {
    await cache.child.stop();
    await removeTemp(join(cache.root, ".."));
  }
}

interface Measured {
  times: Record<Method, number[]>;
  curlFloorMs: number;
}

async function measure(s: Served, settings: TimeToDataSettings): Promise<Measured> {
  const nginxRoot = join(s.dir, "nginx-root");
  mkdirSync(nginxRoot);
  copyFileSync(s.file, join(nginxRoot, "model.bin")); // the DaemonSet "downloaded it beforehand"
  const nginx = await startNginx(nginxRoot);
  const warm = await startCacheProc("warm");
  const small = await prepareSmall(s, settings.smallBytes);
  try {
    await viaCache(warm, s, "mount"); // the first pod on this node filled it
    await viaCache(warm, s, "mount", small.url, small.sha256, small.size);
    const out = join(s.dir, "download.bin");
    const runs: Record<Method, () => Promise<number>> = {
      origin: () => download(s.url(), out, s.size),
      nginx: () => download(nginx.url("model.bin"), out, s.size),
      "copy-warm": () => viaCache(warm, s, "copy"),
      "mount-warm": () => viaCache(warm, s, "mount"),
      "mount-warm-small": () => viaCache(warm, s, "mount", small.url, small.sha256, small.size),
      "mount-cold": () => cold(s, "mount"),
      "copy-cold": () => cold(s, "copy"),
    };
    const times = Object.fromEntries(METHODS.map((m) => [m, [] as number[]])) as Record<Method, number[]>;
    for (let round = 0; round < settings.rounds; round++) {
      for (const m of METHODS) {
        const ms = await runs[m]();
        times[m].push(ms);
        process.stdout.write(`  round ${round + 1} ${m}: ${fmtMs(ms)}\n`);
      }
    }
    const floor: number[] = [];
    for (let i = 0; i < 5; i++) floor.push((await run("curl", ["-q", "--silent", "--fail", "-o", "/dev/null", `${warm.url}/healthz`])).ms);
    return { times, curlFloorMs: median(floor) };
  } finally {
    await Promise.all([nginx.child.stop(), warm.child.stop()]);
  }
}

/** A second, small file on the same origin, for warm mount mode's "regardless of size". */
async function prepareSmall(s: Served, bytes: number): Promise<{ url: string; sha256: string; size: number }> {
  const path = join(s.dir, "small.bin");
  await makeFile(path, bytes);
  const r = await s.origin.putFile("/models/small.bin", path);
  return { url: s.origin.url("/models/small.bin"), sha256: r.sha256, size: r.size };
}

export async function benchTimeToData(settings: TimeToDataSettings = TTD_DEFAULTS): Promise<TimeToDataResult> {
  return withServedFile("time-to-data", settings.sizeBytes, settings.rate, async (s) => {
    const { times, curlFloorMs } = await measure(s, settings);
    const origin = median(times.origin);
    const methods = METHODS.map((method) => ({ method, ms: times[method], medianMs: median(times[method]), vsOrigin: median(times[method]) / origin }));
    return { sizeBytes: s.size, smallBytes: settings.smallBytes, rate: settings.rate, methods, curlFloorMs };
  });
}

if (isMain(import.meta.url)) {
  main(async () => {
    await buildDist();
    const result = await benchTimeToData();
    await finish("time-to-data", TTD_DEFAULTS, result);
    for (const m of result.methods) process.stdout.write(`${m.method}: ${fmtMs(m.medianMs)} (${m.vsOrigin.toFixed(3)}x origin)\n`);
  });
}
