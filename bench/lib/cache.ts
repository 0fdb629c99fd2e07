// A node cache under test: `node dist/cli/main.js cache` on its own root and a free
// port, with a policy file that lets it fetch from the loopback origin.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { CLI, nodeFlags } from "./env.js";
import { start, tempDir, waitForLog, type Child } from "./proc.js";

export interface CacheProc {
  child: Child;
  port: number;
  pid: number;
  root: string;
  url: string;
  /** The policy as the webhook would hold it for this node (cache.root and cache.port filled in). */
  policy: Policy;
}

/** BENCH_PARTS="{size: 8Mi, concurrency: 16}" sets cache.parts (default: the policy's). */
function policyYaml(root: string): string {
  return [
    'identity: {mode: "off"}   # no API server here to verify pod tokens',
    "origins:",
    '  allowPrivate: ["127.0.0.1"]   # the benchmark origin is on loopback',
    "cache:",
    `  root: ${JSON.stringify(root)}`,
    "  diskBudget: 40Gi",
    ...(process.env.BENCH_PARTS ? [`  parts: ${process.env.BENCH_PARTS}`] : []),
    "",
  ].join("\n");
}

/** Start a cache on a fresh root (a cold node); stop it with `child.stop()`. */
export async function startCacheProc(label = "cache"): Promise<CacheProc> {
  const dir = await tempDir(label);
  const root = join(dir, "root");
  const policyFile = join(dir, "policy.yaml");
  writeFileSync(policyFile, policyYaml(root));
  const child = start(process.execPath, [...nodeFlags(), CLI, "cache", "--host", "127.0.0.1", "--port", "0", "--root", root, "--policy", policyFile], {
    log: join(dir, "cache.log"),
  });
  const port = Number((await waitForLog(child, /"port":(\d+)[^\n]*"cache listening"/))[1]);
  const parsed = parsePolicy(policyYaml(root));
  if (!parsed.ok) throw new Error(`benchmark policy is invalid: ${parsed.errors.join("; ")}`);
  const policy: Policy = { ...parsed.policy, cache: { ...parsed.policy.cache, port } };
  return { child, port, pid: child.pid, root, url: `http://127.0.0.1:${port}`, policy };
}
