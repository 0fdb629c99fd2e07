// The node cache DaemonSet and its RBAC, with the port and root taken from the policy
// so the hostPort and hostPath match what the webhook writes into pods; and the cluster
// tier's objects: the headless Service whose EndpointSlices are the peers, the Role to
// watch them, the peer port (a pod port, no hostPort) and the projected own token.
import type { KubernetesObject, V1ClusterRole, V1ClusterRoleBinding, V1DaemonSet, V1ResourceRequirements, V1Role, V1RoleBinding, V1SecurityContext, V1Service } from "@kubernetes/client-node";
import type { Policy } from "../policy/schema.js";
import { TOKEN_AUDIENCE } from "../shared/identity.js";
import { DEFAULT_TARGET, NAMES, PATHS, labels, selectorLabels, type Target } from "./names.js";
import { cliContainer, fieldEnv, peerTokenMount, peerTokenVolume, policyMount, policyVolume, resources, tmpMount, tmpVolume } from "./security.js";
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
  const peerPort = policy.cache.peers.port;
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
              env: [
                fieldEnv("NODE_NAME", "spec.nodeName"),
                // $(NODE_IP) in cache.proxies URLs: a proxy on every node (a Dragonfly dfdaemon).
                fieldEnv("NODE_IP", "status.hostIP"),
                fieldEnv("POD_NAMESPACE", "metadata.namespace"),
                fieldEnv("CACHE_IO_SERVICE_ACCOUNT", "spec.serviceAccountName"),
                { name: "CACHE_IO_PEERS_SERVICE", value: NAMES.peersService },
              ],
              // Pods reach the cache at http://$(NODE_IP):<port>; other node caches at <pod IP>:<peer port>.
              ports: [
                { name: "http", containerPort: port, hostPort: port, protocol: "TCP" },
                { name: "peer", containerPort: peerPort, protocol: "TCP" },
              ],
              startupProbe: probe("/healthz", 5, 60),
              readinessProbe: probe("/readyz", 5, 3),
              livenessProbe: probe("/healthz", 10, 6),
              resources: structuredClone(res),
              securityContext: nodeCacheSecurityContext(),
              // The same path inside and out: the policy's root is both where the
              // cache writes and the hostPath the webhook mounts into pods.
              volumeMounts: [{ name: "cache-root", mountPath: root }, policyMount(), tmpMount(), peerTokenMount()],
            }),
          ],
          volumes: [{ name: "cache-root", hostPath: { path: root, type: "DirectoryOrCreate" } }, policyVolume(NAMES.policy), tmpVolume(), peerTokenVolume(TOKEN_AUDIENCE)],
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

/**
 * The peers: a headless Service over the node cache pods, so the EndpointSlice
 * controller lists each ready one (pod IP, node name) with the port named `peer`.
 */
export function peersService(policy: Policy, namespace: string): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: NAMES.peersService, namespace, labels: labels(component) },
    spec: {
      clusterIP: "None",
      selector: selectorLabels(component),
      ports: [{ name: "peer", port: policy.cache.peers.port, targetPort: "peer", protocol: "TCP" }],
    },
  };
}

/** The peers Service's EndpointSlices in its own namespace: list and watch (an informer), nothing else. */
export function peersRbac(namespace: string): [V1Role, V1RoleBinding] {
  const name = `${NAMES.nodeCache}-peers`;
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name, namespace, labels: labels(component) },
      rules: [{ apiGroups: ["discovery.k8s.io"], resources: ["endpointslices"], verbs: ["list", "watch"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name, namespace, labels: labels(component) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name },
      subjects: [{ kind: "ServiceAccount", name: NAMES.nodeCache, namespace }],
    },
  ];
}

export function nodeCacheObjects(policy: Policy, t: Target = DEFAULT_TARGET, res: V1ResourceRequirements = NODE_CACHE_RESOURCES): KubernetesObject[] {
  return [
    serviceAccount(NAMES.nodeCache, component, true, t.namespace),
    ...nodeCacheRbac(t.namespace),
    ...peersRbac(t.namespace),
    peersService(policy, t.namespace),
    nodeCacheDaemonSet(policy, t, res),
  ];
}
