// Cluster-level objects: the namespace (Pod Security "privileged", because the node
// cache needs hostPath and hostPort) and the priority class of the node cache and webhook.
import type { V1Namespace, V1PriorityClass } from "@kubernetes/client-node";
import { NAMES, NAMESPACE } from "./names.js";

export function namespace(): V1Namespace {
  return {
    apiVersion: "v1",
    kind: "Namespace",
    metadata: {
      name: NAMESPACE,
      labels: {
        "app.kubernetes.io/part-of": "cache-io",
        // Explicit, so a cluster-wide Pod Security default cannot block the node cache.
        "pod-security.kubernetes.io/enforce": "privileged",
        "pod-security.kubernetes.io/warn": "baseline",
      },
    },
  };
}

/**
 * Our own class at the highest value a non-system class may have (1e9): above every
 * workload, so the cache is neither preempted nor evicted before the pods that need
 * it, yet below system-node-critical (kubelet, CNI, kube-proxy). The system-* classes
 * need a ResourceQuota outside kube-system on some providers (GKE), so we avoid them.
 */
export function priorityClass(): V1PriorityClass {
  return {
    apiVersion: "scheduling.k8s.io/v1",
    kind: "PriorityClass",
    metadata: { name: NAMES.priorityClass, labels: { "app.kubernetes.io/part-of": "cache-io" } },
    value: 1_000_000_000,
    globalDefault: false,
    preemptionPolicy: "PreemptLowerPriority",
    description: "cache-io node cache and webhook: pods that ask for cached files cannot start without them",
  };
}
