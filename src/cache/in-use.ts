// Which cached files are in use: keys whose object directory a non-terminated pod on this
// node mounts as a hostPath (when a node name and a cluster config are available; never
// evicted), and keys requested within a recent window (a bounded map; eviction protects
// them only within cache.recentUseShare of the budget).
import type { KubeConfig, V1Pod } from "@kubernetes/client-node";
import type { Logger } from "../shared/log.js";
import { KEY_PATTERN } from "../shared/protocol.js";

const WATCH_RESTART_MS = 5_000;

/** The cache keys a pod mounts: hostPath volumes at `<root>/objects/<key>` for one of `roots`. */
export function keysOfPod(pod: V1Pod, roots: string[]): string[] {
  const phase = pod.status?.phase;
  if (phase === "Succeeded" || phase === "Failed") return [];
  const prefixes = roots.map((r) => `${r.replace(/\/+$/, "")}/objects/`);
  const keys: string[] = [];
  for (const v of pod.spec?.volumes ?? []) {
    const path = v.hostPath?.path?.replace(/\/+$/, "");
    const prefix = path && prefixes.find((p) => path.startsWith(p));
    const key = prefix && path.slice(prefix.length);
    if (key && KEY_PATTERN.test(key)) keys.push(key);
  }
  return keys;
}

type WatchState = "off" | "syncing" | "synced";

export interface RecentLimits {
  /** How long a requested key counts as recently used (ms). */
  windowMs(): number;
  /** At most this many keys are remembered; the least recently requested are forgotten first. */
  maxKeys(): number;
}

export class InUse {
  /** Key -> time of its last request, in request order (a Map keeps insertion order). */
  #recent = new Map<string, number>();
  #pods = new Map<string, string[]>();
  /** Key -> how many watched pods mount it. */
  #mounts = new Map<string, number>();
  #state: WatchState = "off";
  #lastError = "";
  #stop: (() => void) | undefined;

  constructor(
    private readonly roots: string[],
    private readonly limits: RecentLimits,
  ) {}

  /** Record a request for `key`; forgets the oldest keys past maxKeys and expired ones. */
  touch(key: string, now = Date.now()): void {
    this.#recent.delete(key);
    this.#recent.set(key, now);
    const max = this.limits.maxKeys();
    const window = this.limits.windowMs();
    for (const [k, t] of this.#recent) {
      if (this.#recent.size <= max && now - t < window) break;
      this.#recent.delete(k);
    }
  }

  /** Keys remembered as recently requested (bounded by recentUseMaxKeys). */
  get recentKeys(): number {
    return this.#recent.size;
  }

  recent(key: string, now = Date.now()): boolean {
    const t = this.#recent.get(key);
    return t !== undefined && now - t < this.limits.windowMs();
  }

  /** A running pod on this node mounts `key`. */
  mounted(key: string): boolean {
    return this.#mounts.has(key);
  }

  has(key: string, now = Date.now()): boolean {
    return this.mounted(key) || this.recent(key, now);
  }

  /** Why in-use state is unknown (the pod watch has not synced yet), or null. */
  blocked(): string | null {
    if (this.#state !== "syncing") return null;
    return `the watch of this node's pods has synced (it has not yet${this.#lastError ? `: ${this.#lastError}` : ""})`;
  }

  /** "off" (recent requests only), "syncing" or "synced". */
  get watchState(): WatchState {
    return this.#state;
  }

  /** List and watch the pods of `nodeName` (fieldSelector spec.nodeName), restarting the watch on errors. */
  async watchPods(kc: KubeConfig, nodeName: string, log: Logger): Promise<void> {
    const k8s = await import("@kubernetes/client-node");
    const fieldSelector = `spec.nodeName=${nodeName}`;
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const list = async () => {
      const pods = await core.listPodForAllNamespaces({ fieldSelector });
      this.#pods.clear();
      this.#mounts.clear();
      for (const p of pods.items) this.#setPod(podId(p), keysOfPod(p, this.roots));
      if (this.#state === "syncing") log.info({ pods: pods.items.length, nodeName }, "pod watch synced");
      this.#state = "synced";
      return pods;
    };
    const informer = new k8s.ListWatch<V1Pod>("/api/v1/pods", new k8s.Watch(kc), list, false, undefined, fieldSelector);
    const set = (p: V1Pod) => this.#setPod(podId(p), keysOfPod(p, this.roots));
    informer.on("add", set);
    informer.on("update", set);
    informer.on("delete", (p) => this.#setPod(podId(p), []));
    let timer: NodeJS.Timeout | undefined;
    informer.on("error", (err: unknown) => {
      this.#lastError = (err as Error)?.message ?? String(err);
      log.warn({ err: this.#lastError }, "pod watch failed; restarting");
      timer = setTimeout(() => void informer.start().catch(() => undefined), WATCH_RESTART_MS);
    });
    this.#state = "syncing";
    this.#stop = () => {
      clearTimeout(timer);
      void informer.stop();
    };
    await informer.start();
  }

  #setPod(id: string, keys: string[]): void {
    for (const k of this.#pods.get(id) ?? []) {
      const n = (this.#mounts.get(k) ?? 1) - 1;
      if (n > 0) this.#mounts.set(k, n);
      else this.#mounts.delete(k);
    }
    if (keys.length) this.#pods.set(id, keys);
    else this.#pods.delete(id);
    for (const k of keys) this.#mounts.set(k, (this.#mounts.get(k) ?? 0) + 1);
  }

  stop(): void {
    this.#stop?.();
    this.#stop = undefined;
  }
}

function podId(p: V1Pod): string {
  return p.metadata?.uid ?? `${p.metadata?.namespace}/${p.metadata?.name}`;
}

/** A cluster config when one is available (in-cluster, or KUBECONFIG), else null. */
export async function clusterConfig(): Promise<KubeConfig | null> {
  if (!process.env.KUBERNETES_SERVICE_HOST && !process.env.KUBECONFIG) return null;
  const { KubeConfig } = await import("@kubernetes/client-node");
  const kc = new KubeConfig();
  kc.loadFromDefault();
  return kc.getCurrentCluster() ? kc : null;
}
