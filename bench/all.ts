// Every benchmark, scaled to finish in about 10 minutes on a 2-core machine, then
// docs/BENCHMARKS.md and its charts regenerated from the raw results.
// Run: npx tsx bench/all.ts           (--quick: tiny sizes, a smoke test that saves nothing)
import { benchManyNodes, MANY_NODES_DEFAULTS } from "./many-nodes.js";
import { benchManyPods, MANY_PODS_DEFAULTS } from "./many-pods.js";
import { benchServing, SERVING_DEFAULTS } from "./serving.js";
import { benchTimeToData, TTD_DEFAULTS } from "./time-to-data.js";
import { benchWebhook, WEBHOOK_DEFAULTS } from "./webhook.js";
import { buildDist, main } from "./lib/env.js";
import { finish } from "./lib/finish.js";
import { ensureNginx } from "./lib/nginx.js";
import { MiB } from "./lib/stats.js";

const quick = process.argv.includes("--quick");

interface Step {
  name: string;
  settings: object;
  run(): Promise<unknown>;
}

/** A benchmark with its full settings, or its tiny ones under --quick. */
function step<S extends object>(name: string, settings: S, small: Partial<S>, bench: (s: S) => Promise<unknown>): Step {
  return { name, settings, run: () => bench(quick ? { ...settings, ...small } : settings) };
}

const STEPS: Step[] = [
  step("webhook", WEBHOOK_DEFAULTS, { seconds: 2, rounds: 1, costIterations: 500, costRuns: 3 }, benchWebhook),
  step("time-to-data", TTD_DEFAULTS, { sizeBytes: 32 * MiB, rounds: 1, smallBytes: MiB }, benchTimeToData),
  step("many-pods", MANY_PODS_DEFAULTS, { sizeBytes: 16 * MiB, podCounts: [1, 10], rounds: 1 }, benchManyPods),
  step("many-nodes", MANY_NODES_DEFAULTS, { sizeBytes: 16 * MiB, podsPerNode: 2, rounds: 1 }, benchManyNodes),
  step("serving", SERVING_DEFAULTS, { sizeBytes: 64 * MiB, rounds: 1 }, benchServing),
];

async function runStep(s: Step): Promise<void> {
  const t0 = performance.now();
  process.stdout.write(`\n== ${s.name} ==\n`);
  const result = await s.run();
  if (!quick) await finish(s.name, s.settings, result);
  process.stdout.write(`== ${s.name}: ${((performance.now() - t0) / 1000).toFixed(0)} s ==\n`);
}

main(async () => {
  const t0 = performance.now();
  await buildDist();
  await ensureNginx();
  for (const s of STEPS) await runStep(s);
  process.stdout.write(`\nall benchmarks: ${((performance.now() - t0) / 60_000).toFixed(1)} min${quick ? " (quick: nothing saved)" : ""}\n`);
});
