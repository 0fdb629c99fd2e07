// Which cached files are in use, so eviction never removes them: keys requested within
// a recent window (always), and keys whose object directory a non-terminated pod on
// this node mounts as a hostPath (when a node name and a cluster config are available).
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

export class InUse {
  #recent = new Map<string, number>();
  #pods = new Map<string, string[]>();
  #state: WatchState = "off";
  #lastError = "";
  #stop: (() => void) | undefined;

  constructor(
    private readonly roots: string[],
    private readonly windowMs: number,
  ) {}

  /** Record a request for `key`. */
  touch(key: string, now = Date.now()): void {
    this.#recent.set(key, now);
  }

  has(key: string, now = Date.now()): boolean {
    const t = this.#recent.get(key);
    if (t !== undefined && now - t < this.windowMs) return true;
    for (const keys of this.#pods.values()) if (keys.includes(key)) return true;
    return false;
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
      this.#pods = new Map(pods.items.map((p) => [podId(p), keysOfPod(p, this.roots)]));
      if (this.#state === "syncing") log.info({ pods: pods.items.length, nodeName }, "pod watch synced");
      this.#state = "synced";
      return pods;
    };
    const informer = new k8s.ListWatch<V1Pod>("/api/v1/pods", new k8s.Watch(kc), list, false, undefined, fieldSelector);
    const set = (p: V1Pod) => void this.#pods.set(podId(p), keysOfPod(p, this.roots));
    informer.on("add", set);
    informer.on("update", set);
    informer.on("delete", (p) => void this.#pods.delete(podId(p)));
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
