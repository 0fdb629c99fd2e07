// `cache-io prepull reconcile`: server-side apply the rendered pre-pull DaemonSets and
// delete the ones cache-io owns that the policy no longer needs. Verbs used:
// daemonsets patch (apply; also authorized as create when the object is new), list, delete.
import { AppsV1Api, PatchStrategy, setHeaderOptions, type KubeConfig, type V1DaemonSet } from "@kubernetes/client-node";
import { FIELD_MANAGER } from "../deploy/names.js";
import type { Policy } from "../policy/schema.js";
import type { PolicyStore } from "../policy/store.js";
import { logger } from "../shared/log.js";
import { OWNED_SELECTOR, renderPrepull, type RenderOptions } from "./render.js";

const log = logger("prepull");

export interface ReconcileResult {
  applied: string[];
  deleted: string[];
}

export function ownedSelector(): string {
  return Object.entries(OWNED_SELECTOR).map(([k, v]) => `${k}=${v}`).join(",");
}

export async function reconcileOnce(kc: KubeConfig, policy: Policy, opts: Required<RenderOptions>): Promise<ReconcileResult> {
  const apps = kc.makeApiClient(AppsV1Api);
  const desired = renderPrepull(policy, opts);
  const applyOptions = setHeaderOptions("Content-Type", PatchStrategy.ServerSideApply);
  for (const ds of desired) {
    const name = ds.metadata!.name!;
    await apps.patchNamespacedDaemonSet({ name, namespace: opts.namespace, body: ds, fieldManager: FIELD_MANAGER, force: true }, applyOptions);
  }
  const keep = new Set(desired.map((d) => d.metadata!.name!));
  const existing = await apps.listNamespacedDaemonSet({ namespace: opts.namespace, labelSelector: ownedSelector() });
  const stale = existing.items.map((d: V1DaemonSet) => d.metadata?.name ?? "").filter((n) => n && !keep.has(n));
  for (const name of stale) {
    await apps.deleteNamespacedDaemonSet({ name, namespace: opts.namespace, propagationPolicy: "Background" });
  }
  const result = { applied: [...keep], deleted: stale };
  log.info(result, "pre-pull DaemonSets reconciled");
  return result;
}

/**
 * Reconcile now, then whenever the policy file changes and every `resyncMs` (to undo
 * drift). Runs never overlap; a failed run is logged and retried at the next trigger.
 * Resolves when `signal` aborts.
 */
export async function follow(kc: KubeConfig, store: PolicyStore, opts: Required<RenderOptions>, signal: AbortSignal, resyncMs = 300_000): Promise<void> {
  let running: Promise<void> = Promise.resolve();
  const trigger = (why: string) => {
    running = running.then(() =>
      reconcileOnce(kc, store.current(), opts).then(
        () => undefined,
        (err: unknown) => log.error({ err, why }, "pre-pull reconcile failed; will retry"),
      ),
    );
  };
  trigger("start");
  const timer = setInterval(() => trigger("resync"), resyncMs);
  const watcher = setInterval(() => void store.reload().then((changed) => changed && trigger("policy changed")), 2000);
  await new Promise<void>((done) => signal.addEventListener("abort", () => done(), { once: true }));
  clearInterval(timer);
  clearInterval(watcher);
  await running;
}
