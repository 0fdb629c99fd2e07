// Benchmark 2: 1, 10, 50, 100 pods on one cold node ask for the same file at once,
// through the throttled origin: origin bytes, time until the last pod has it (against
// one direct origin transfer measured in the same run), the cache's peak RSS.
// Run: npx tsx bench/many-pods.ts
import { join } from "node:path";
import { crowd, type CrowdRun } from "./lib/crowd.js";
import { buildDist, isMain, main } from "./lib/env.js";
import { finish } from "./lib/finish.js";
import { withServedFile } from "./lib/fixture.js";
import { download } from "./lib/pod.js";
import { fmtBytes, fmtMs, median, MiB } from "./lib/stats.js";

export interface ManyPodsSettings {
  sizeBytes: number;
  rate: number;
  podCounts: number[];
  rounds: number;
}

export const MANY_PODS_DEFAULTS: ManyPodsSettings = { sizeBytes: 256 * MiB, rate: 60e6, podCounts: [1, 10, 50, 100], rounds: 3 };

export interface PodCountResult {
  pods: number;
  runs: CrowdRun[];
  originFiles: number;
  lastMs: number;
  /** Median last-pod time over the median direct transfer time. */
  lastVsDirect: number;
  cacheHwmBytes: number;
  /** Medians of the cache's own fill time and of N curls of /healthz started together. */
  fillMs: number;
  floorMs: number;
  /** Without a cache every pod fetches the file itself. */
  baselineFiles: number;
}

export interface ManyPodsResult {
  sizeBytes: number;
  rate: number;
  directMs: number[];
  directMedianMs: number;
  counts: PodCountResult[];
}

export async function benchManyPods(s: ManyPodsSettings = MANY_PODS_DEFAULTS): Promise<ManyPodsResult> {
  return withServedFile("many-pods", s.sizeBytes, s.rate, async (served) => {
    const directMs: number[] = [];
    const runs = new Map<number, CrowdRun[]>(s.podCounts.map((n) => [n, []]));
    for (let round = 0; round < s.rounds; round++) {
      directMs.push(await download(served.url(), join(served.dir, "direct.bin"), served.size));
      process.stdout.write(`  round ${round + 1} one direct transfer: ${fmtMs(directMs[directMs.length - 1]!)}\n`);
      for (const n of s.podCounts) {
        const r = await crowd(served, n, 1);
        runs.get(n)!.push(r);
        process.stdout.write(`  round ${round + 1} ${n} pods: last ${fmtMs(r.lastMs)}, origin ${r.originFiles.toFixed(2)}x the file, cache peak RSS ${fmtBytes(r.cacheHwm[0] ?? NaN)}, fill ${fmtMs(r.fillMs[0] ?? NaN)}, ${n} curls of /healthz ${fmtMs(r.floorMs)}, curl retries ${r.retries}\n`);
      }
    }
    const direct = median(directMs);
    const counts = s.podCounts.map((pods): PodCountResult => {
      const rs = runs.get(pods)!;
      const lastMs = median(rs.map((r) => r.lastMs));
      return {
        pods,
        runs: rs,
        originFiles: median(rs.map((r) => r.originFiles)),
        lastMs,
        lastVsDirect: lastMs / direct,
        cacheHwmBytes: Math.max(...rs.map((r) => r.cacheHwm[0] ?? NaN)),
        fillMs: median(rs.map((r) => r.fillMs[0] ?? NaN)),
        floorMs: median(rs.map((r) => r.floorMs)),
        baselineFiles: pods,
      };
    });
    return { sizeBytes: served.size, rate: s.rate, directMs, directMedianMs: direct, counts };
  });
}

if (isMain(import.meta.url)) {
  main(async () => {
    await buildDist();
    const result = await benchManyPods();
    await finish("many-pods", MANY_PODS_DEFAULTS, result);
  });
}
