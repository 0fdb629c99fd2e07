// The cost of the pure mutation alone: review() (envelope + decide() + JSON patch)
// and decide(), in a tight loop after a warm-up, median over several timed runs.
import type { V1Pod } from "@kubernetes/client-node";
import { defaultPolicy } from "../../src/policy/load.js";
import { decide } from "../../src/webhook/decide.js";
import { review } from "../../src/webhook/review.js";
import { median } from "./stats.js";

export interface CostResult {
  /** Median microseconds per call over `runs` runs of `iterations` calls. */
  reviewUs: number;
  decideUs: number;
  runs: number;
  iterations: number;
}

function timePerCall(fn: () => unknown, iterations: number, runs: number): number {
  for (let i = 0; i < Math.min(iterations, 2000); i++) fn(); // warm-up: let V8 optimize
  const perRun: number[] = [];
  for (let r = 0; r < runs; r++) {
    const t0 = process.hrtime.bigint();
    for (let i = 0; i < iterations; i++) fn();
    perRun.push(Number(process.hrtime.bigint() - t0) / 1e3 / iterations);
  }
  return median(perRun);
}

/** `reviewJson` is the AdmissionReview text the load test sends. */
export function reviewCost(reviewJson: string, iterations: number, runs: number): CostResult {
  const body = JSON.parse(reviewJson) as { request: { object: V1Pod; namespace?: string } };
  const policy = defaultPolicy();
  const first = review(body, policy, { copyOnly: false });
  if (first.outcome !== "patched") throw new Error(`the benchmark review was not patched (outcome ${first.outcome}); fix the review`);
  const pod = body.request.object;
  const opts = { namespace: body.request.namespace, copyOnly: false };
  return {
    reviewUs: timePerCall(() => review(body, policy, { copyOnly: false }), iterations, runs),
    decideUs: timePerCall(() => decide(pod, policy, opts), iterations, runs),
    runs,
    iterations,
  };
}
