// The node cache DaemonSet and its RBAC, with the port and root taken from the policy
// so the hostPort and hostPath match what the webhook writes into pods.
import type { KubernetesObject, V1ClusterRole, V1ClusterRoleBinding, V1DaemonSet, V1ResourceRequirements, V1SecurityContext } from "@kubernetes/client-node";
import type { Policy } from "../policy/schema.js";
import { DEFAULT_TARGET, NAMES, PATHS, labels, selectorLabels, type Target } from "./names.js";
import { cliContainer, fieldEnv, policyMount, policyVolume, resources, tmpMount, tmpVolume } from "./security.js";
import { serviceAccount } from "./webhook.js";

const component = "node-cache";

/**
 * uid 0 with every capability dropped. The kubelet creates each pod's hostPath
 * `<root>/objects/<key>` (DirectoryOrCreate) as root:root 0755, often before the cache
 * has filled it; the cache must then write `data` into it. As the directory's owner,
 * uid 0 can do that through ordinary permission bits; any other uid would need
 * CAP_DAC_OVERRIDE or CAP_CHOWN. With no capabilities, root here cannot bypass file
 * permissions, chown, bind low ports, load modules or change namespaces.
 */
export function nodeCacheSecurityContext(): V1SecurityContext {
  return {
    runAsUser: 0,
    runAsGroup: 0,
    runAsNonRoot: false,
    privileged: false,
    allowPrivilegeEscalation: false,
    readOnlyRootFilesystem: true,
    capabilities: { drop: ["ALL"] },
    seccompProfile: { type: "RuntimeDefault" },
  };
}

function probe(path: string, periodSeconds: number, failureThreshold: number) {
  return { httpGet: { path, port: "http" }, periodSeconds, failureThreshold, timeoutSeconds: 2 };
}

export const NODE_CACHE_RESOURCES: V1ResourceRequirements = resources({ cpu: "100m", memory: "128Mi" }, { cpu: "2", memory: "1Gi" });

export function nodeCacheDaemonSet(policy: Policy, t: Target = DEFAULT_TARGET, res: V1ResourceRequirements = NODE_CACHE_RESOURCES): V1DaemonSet {
  const { root, port } = policy.cache;
  return {
    apiVersion: "apps/v1",
    kind: "DaemonSet",
    metadata: { name: NAMES.nodeCache, namespace: t.namespace, labels: labels(component) },
    spec: {
      selector: { matchLabels: selectorLabels(component) },
      updateStrategy: { type: "RollingUpdate", rollingUpdate: { maxUnavailable: 1 } },
      template: {
        metadata: { labels: labels(component) },
        spec: {
          serviceAccountName: NAMES.nodeCache,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          priorityClassName: NAMES.priorityClass,
          // Every node a pod can land on needs its cache, whatever its taints.
          tolerations: [{ operator: "Exists" }],
          nodeSelector: { "kubernetes.io/os": "linux" },
          terminationGracePeriodSeconds: 30,
          securityContext: { seccompProfile: { type: "RuntimeDefault" } },
          containers: [
            cliContainer("cache", t.image, ["cache", "--policy", PATHS.policyFile], {
              env: [fieldEnv("NODE_NAME", "spec.nodeName")],
              // Pods reach the cache at http://$(NODE_IP):<port>.
              ports: [{ name: "http", containerPort: port, hostPort: port, protocol: "TCP" }],
              startupProbe: probe("/healthz", 5, 60),
              readinessProbe: probe("/readyz", 5, 3),
              livenessProbe: probe("/healthz", 10, 6),
              resources: structuredClone(res),
              securityContext: nodeCacheSecurityContext(),
              // The same path inside and out: the policy's root is both where the
              // cache writes and the hostPath the webhook mounts into pods.
              volumeMounts: [{ name: "cache-root", mountPath: root }, policyMount(), tmpMount()],
            }),
          ],
          volumes: [{ name: "cache-root", hostPath: { path: root, type: "DirectoryOrCreate" } }, policyVolume(NAMES.policy), tmpVolume()],
        },
      },
    },
  };
}

/** Pods on its own node only: the cache lists/watches with fieldSelector spec.nodeName. */
export function nodeCacheRbac(namespace: string): [V1ClusterRole, V1ClusterRoleBinding] {
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: NAMES.nodeCache, labels: labels(component) },
      rules: [{ apiGroups: [""], resources: ["pods"], verbs: ["list", "watch"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: NAMES.nodeCache, labels: labels(component) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: NAMES.nodeCache },
      subjects: [{ kind: "ServiceAccount", name: NAMES.nodeCache, namespace }],
    },
  ];
}

export function nodeCacheObjects(policy: Policy, t: Target = DEFAULT_TARGET, res: V1ResourceRequirements = NODE_CACHE_RESOURCES): KubernetesObject[] {
  return [serviceAccount(NAMES.nodeCache, component, true, t.namespace), ...nodeCacheRbac(t.namespace), nodeCacheDaemonSet(policy, t, res)];
}
