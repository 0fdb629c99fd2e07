// A node cache on a temp root in front of a test origin on loopback, with every log line
// it writes captured (for tests that check what the logs contain, or do not).
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { pino } from "pino";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { parsePolicy } from "../../src/policy/load.js";
import { startOrigin, type Origin } from "../support/origin.js";

export interface LoggedCache {
  origin: Origin;
  cache: RunningCache;
  root: string;
  logs: string[];
  stop(): Promise<void>;
}

export async function startLoggedCache(name: string, idleTimeout = "5s"): Promise<LoggedCache> {
  const origin = await startOrigin();
  const root = mkdtempSync(join(tmpdir(), `cache-${name}-`));
  const r = parsePolicy(`identity: {mode: "off"}\norigins: {allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"]}\ncache: {originRetries: 1, idleTimeout: ${idleTimeout}}`);
  if (!r.ok) throw new Error(r.errors.join());
  const logs: string[] = [];
  const log = pino({ level: "debug" }, { write: (line: string) => void logs.push(line) });
  const cache = await startCache({ root, host: "127.0.0.1", port: 0, policy: () => r.policy, retryBaseMs: 10, log, ensureGraceMs: 100, progressIntervalMs: 100 });
  return {
    origin,
    cache,
    root,
    logs,
    stop: async () => {
      await cache.close(100);
      await origin.close();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
