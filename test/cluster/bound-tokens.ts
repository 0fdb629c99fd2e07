// Pods scheduled onto the test cluster's kwok nodes and the tokens the kubelet would
// project for them: TokenRequest bound to the pod (boundObjectRef), so the token names
// the pod's node, as node caches and their peers get it in production.
import type { V1Pod } from "@kubernetes/client-node";
import { TOKEN_AUDIENCE } from "../../src/shared/identity.js";
import type { Api } from "./api.js";
import { until } from "./kube.js";

/** A pod of ServiceAccount `sa` pinned to `nodeName`, once the scheduler bound it and kwok gave it a hostIP. */
export async function scheduledPod(api: Api, ns: string, name: string, nodeName: string, sa = "default"): Promise<V1Pod> {
  await api.must("POST", `/api/v1/namespaces/${ns}/pods`, {
    apiVersion: "v1", kind: "Pod", metadata: { name },
    spec: { serviceAccountName: sa, nodeSelector: { "kubernetes.io/hostname": nodeName }, containers: [{ name: "app", image: "registry.example.com/app:1" }], terminationGracePeriodSeconds: 0 },
  });
  return until(`pod ${ns}/${name} on ${nodeName}`, async () => {
    const p = (await api.get(`/api/v1/namespaces/${ns}/pods/${name}`)).body as V1Pod;
    return p.spec?.nodeName && p.status?.hostIP ? p : undefined;
  }, 90_000);
}

/** The token the kubelet would project into `pod` (its ServiceAccount, bound to it). */
export async function boundToken(api: Api, pod: V1Pod, audience = TOKEN_AUDIENCE): Promise<string> {
  const sa = pod.spec?.serviceAccountName ?? "default";
  const r = await api.must("POST", `/api/v1/namespaces/${pod.metadata!.namespace}/serviceaccounts/${sa}/token`, {
    apiVersion: "authentication.k8s.io/v1", kind: "TokenRequest",
    spec: { audiences: [audience], expirationSeconds: 600, boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata!.name, uid: pod.metadata!.uid } },
  });
  return r.status.token as string;
}
