// Once per test run, before any test file: build dist/ (tests that spawn the real CLI,
// `node dist/cli/main.js ...`, run the same code users run), then start the test control
// plane (test/cluster/harness.ts) when the run includes cluster tests, and hand its
// kubeconfig and binaries to the test files. The teardown stops it, also on failure.
import { execFileSync } from "node:child_process";
import { readdirSync } from "node:fs";
import type { TestProject } from "vitest/node";
import "./cluster/context.js";
import { startCluster, type Cluster } from "./cluster/harness.js";
import { ensureTools } from "./cluster/tools.js";

function clusterTestsInRun(project: TestProject): boolean {
  if (process.env.CACHE_IO_CLUSTER === "off") return false;
  const patterns = (project.vitest as unknown as { filenamePattern?: string[] }).filenamePattern;
  const files = readdirSync("test/cluster").filter((f) => f.endsWith(".test.ts")).map((f) => `test/cluster/${f}`);
  if (!patterns?.length) return files.length > 0;
  return files.some((f) => patterns.some((p) => f.includes(p) || p.includes("test/cluster")));
}

export default async function setup(project: TestProject): Promise<(() => Promise<void>) | void> {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
  project.provide("cluster", null);
  if (!clusterTestsInRun(project)) {
    project.provide("clusterSkip", "this run includes no cluster tests (or CACHE_IO_CLUSTER=off)");
    return;
  }
  const tools = ensureTools();
  if (!tools.ok) {
    project.provide("clusterSkip", tools.reason);
    return;
  }
  const cluster: Cluster = await startCluster(tools.bin, { log: (s) => console.error(`[cluster] ${s}`) });
  const { procs: _procs, stop, ...info } = cluster;
  project.provide("cluster", info);
  project.provide("clusterSkip", "");
  return stop;
}
