// Steady admission load for the rollout tests: annotated pods created with dryRun=All (the
// webhook is called, nothing is stored) at a fixed rate until stopped; every answer that
// is not a mutated 201 is kept with its message.
import type { Api } from "./api.js";

export interface LoadResult {
  sent: number;
  ok: number;
  failures: string[];
}

export function steadyLoad(api: Api, namespace: string, perSecond: number): { stop(): Promise<LoadResult> } {
  const result: LoadResult = { sent: 0, ok: 0, failures: [] };
  const inFlight = new Set<Promise<void>>();
  const one = async (i: number) => {
    const pod = {
      apiVersion: "v1", kind: "Pod", metadata: { name: `load-${i}`, namespace, annotations: { "cache.io/files": `https://models.example.com/m${i % 7}.bin` } },
      spec: { containers: [{ name: "app", image: "registry.example.com/app:1" }] },
    };
    try {
      const r = await api.req("POST", `/api/v1/namespaces/${namespace}/pods?dryRun=All`, pod, { timeoutMs: 60_000 });
      if (r.status === 201 && r.body.metadata?.annotations?.["cache.io/status"] === "injected") result.ok++;
      else result.failures.push(`${r.status} ${String(r.body?.message ?? r.text).slice(0, 300)}`);
    } catch (err) {
      result.failures.push((err as Error).message);
    }
  };
  const timer = setInterval(() => {
    const p = one(result.sent++).finally(() => inFlight.delete(p));
    inFlight.add(p);
  }, 1000 / perSecond);
  return {
    async stop() {
      clearInterval(timer);
      await Promise.all([...inFlight]);
      return result;
    },
  };
}
