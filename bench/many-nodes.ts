// Benchmark 3: several cold nodes (one cache process each, its own root and port) with
// pods spread over them, all asking for one file at once: origin bytes against the
// per-pod baseline (every pod fetching the file itself) and against one per node.
// Run: npx tsx bench/many-nodes.ts
import { join } from "node:path";
import { crowd, type CrowdRun } from "./lib/crowd.js";
import { buildDist, isMain, main } from "./lib/env.js";
import { finish } from "./lib/finish.js";
import { withServedFile } from "./lib/fixture.js";
import { download } from "./lib/pod.js";
import { fmtMs, median, MiB } from "./lib/stats.js";

export interface ManyNodesSettings {
  sizeBytes: number;
  rate: number;
  nodes: number;
  podsPerNode: number;
  rounds: number;
}

export const MANY_NODES_DEFAULTS: ManyNodesSettings = { sizeBytes: 256 * MiB, rate: 60e6, nodes: 4, podsPerNode: 10, rounds: 3 };

export interface ManyNodesResult {
  sizeBytes: number;
  rate: number;
  nodes: number;
  pods: number;
  runs: CrowdRun[];
  directMs: number[];
  originFiles: number;
  /** Every pod fetching the file itself: one file per pod. */
  baselineFiles: number;
  /** originFiles over baselineFiles. */
  vsBaseline: number;
  lastMs: number;
  lastVsDirect: number;
  cacheHwmBytes: number;
}

export async function benchManyNodes(s: ManyNodesSettings = MANY_NODES_DEFAULTS): Promise<ManyNodesResult> {
  const pods = s.nodes * s.podsPerNode;
  return withServedFile("many-nodes", s.sizeBytes, s.rate, async (served) => {
    const runs: CrowdRun[] = [];
    const directMs: number[] = [];
    for (let round = 0; round < s.rounds; round++) {
      directMs.push(await download(served.url(), join(served.dir, "direct.bin"), served.size));
      const r = await crowd(served, pods, s.nodes);
      runs.push(r);
      process.stdout.write(`  round ${round + 1}: ${pods} pods on ${s.nodes} nodes, origin ${r.originFiles.toFixed(2)}x the file, last pod ${fmtMs(r.lastMs)}\n`);
    }
    const originFiles = median(runs.map((r) => r.originFiles));
    const lastMs = median(runs.map((r) => r.lastMs));
    return {
      sizeBytes: served.size,
      rate: s.rate,
      nodes: s.nodes,
      pods,
      runs,
      directMs,
      originFiles,
      baselineFiles: pods,
      vsBaseline: originFiles / pods,
      lastMs,
      lastVsDirect: lastMs / median(directMs),
      cacheHwmBytes: Math.max(...runs.flatMap((r) => r.cacheHwm)),
    };
  });
}

if (isMain(import.meta.url)) {
  main(async () => {
    await buildDist();
    const result = await benchManyNodes();
    await finish("many-nodes", MANY_NODES_DEFAULTS, result);
  });
}
