// Pods on the test nodes through the API server: create, wait for a phase, read a
// container's log (the API server asks the node's kubelet, as `kubectl logs` does).
import type { V1Pod } from "@kubernetes/client-node";
import type { Kube } from "./kube.js";
import { TOLERATE_NODE } from "./kubelet.js";
import { waitFor } from "./proc.js";

export async function createPod(kube: Kube, pod: V1Pod): Promise<V1Pod> {
  const ns = pod.metadata!.namespace ?? "default";
  return kube.must("POST", `/api/v1/namespaces/${ns}/pods`, pod);
}

export async function getPod(kube: Kube, ns: string, name: string): Promise<V1Pod> {
  return kube.must("GET", `/api/v1/namespaces/${ns}/pods/${name}`);
}

/** Wait until the pod reaches one of `phases`; on timeout, say where it is stuck. */
export async function waitPhase(kube: Kube, ns: string, name: string, phases: string[], timeoutMs = 180_000): Promise<V1Pod> {
  let last: V1Pod | undefined;
  try {
    return await waitFor(`pod ${ns}/${name} ${phases.join("|")}`, async () => {
      last = await getPod(kube, ns, name);
      return phases.includes(last.status?.phase ?? "") ? last : undefined;
    }, { timeoutMs, intervalMs: 500 });
  } catch (err) {
    throw new Error(`${(err as Error).message}\nlast status: ${JSON.stringify(last?.status ?? null).slice(0, 3000)}`);
  }
}

export async function logs(kube: Kube, ns: string, name: string, container: string): Promise<string> {
  const r = await kube.req("GET", `/api/v1/namespaces/${ns}/pods/${name}/log?container=${encodeURIComponent(container)}`);
  if (r.status !== 200) throw new Error(`logs of ${ns}/${name} -c ${container}: ${r.status} ${r.text.slice(0, 500)}`);
  return r.text;
}

export async function createNamespace(kube: Kube, name: string, labels: Record<string, string> = {}): Promise<void> {
  await kube.must("POST", "/api/v1/namespaces", { apiVersion: "v1", kind: "Namespace", metadata: { name, labels } });
  await waitFor(`ServiceAccount default in ${name}`, async () => ((await kube.get(`/api/v1/namespaces/${name}/serviceaccounts/default`)).status === 200 ? true : undefined), { timeoutMs: 60_000 });
}

/** Pod spec fields that bind a pod to a test node (which is tainted against everything else). */
export function onNode(name: string) {
  return { nodeName: name, tolerations: TOLERATE_NODE.map((t) => ({ ...t })) };
}
