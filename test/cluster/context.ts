// What vitest's global setup hands to test files (provide/inject), and the rule for
// cluster tests on a machine without the control plane: fail under CI=true, otherwise
// skip with a loud message saying how to enable them.
import { describe, inject, it } from "vitest";
import type { ClusterInfo } from "./harness.js";
import { ENABLE_HINT } from "./tools.js";

declare module "vitest" {
  export interface ProvidedContext {
    cluster: ClusterInfo | null;
    /** Why there is no cluster (empty when there is one). */
    clusterSkip: string;
  }
}

export function clusterInfo(): ClusterInfo | null {
  return inject("cluster");
}

/** describe() for tests that need the real control plane. */
export function describeCluster(name: string, fn: (c: ClusterInfo) => void): void {
  const c = inject("cluster");
  if (c) {
    describe(name, () => fn(c));
    return;
  }
  const why = inject("clusterSkip") || "the test control plane was not started";
  if (process.env.CI === "true") {
    describe(name, () => it("has the real control plane (CI=true: required)", () => {
      throw new Error(`no test control plane: ${why}. ${ENABLE_HINT}`);
    }));
    return;
  }
  console.warn(`\n*** SKIPPED (no test control plane): ${name}\n*** ${why}\n*** ${ENABLE_HINT}\n`);
  describe.skip(name, () => fn(undefined as never));
}
