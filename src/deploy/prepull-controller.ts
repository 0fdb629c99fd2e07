// The pre-pull controller: one replica of `cache-io prepull reconcile`, which renders the
// pre-pull DaemonSets from the policy ConfigMap and keeps them in sync.
import type { KubernetesObject, V1Deployment, V1ResourceRequirements, V1Role, V1RoleBinding } from "@kubernetes/client-node";
import { DEFAULT_TARGET, NAMES, PATHS, labels, selectorLabels, type Target } from "./names.js";
import { cliContainer, fieldEnv, policyMount, policyVolume, resources, restrictedPod, tmpMount, tmpVolume } from "./security.js";
import { serviceAccount } from "./webhook.js";

const component = "prepull-controller";

export const PREPULL_CONTROLLER_RESOURCES: V1ResourceRequirements = resources({ cpu: "10m", memory: "64Mi" }, { cpu: "200m", memory: "192Mi" });

export function prepullControllerDeployment(t: Target = DEFAULT_TARGET, res: V1ResourceRequirements = PREPULL_CONTROLLER_RESOURCES): V1Deployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: NAMES.prepullController, namespace: t.namespace, labels: labels(component) },
    spec: {
      replicas: 1,
      // Never two at once: both would apply the same objects (harmless, but noisy).
      strategy: { type: "Recreate" },
      selector: { matchLabels: selectorLabels(component) },
      template: {
        metadata: { labels: labels(component) },
        spec: {
          serviceAccountName: NAMES.prepullController,
          automountServiceAccountToken: true,
          enableServiceLinks: false,
          securityContext: restrictedPod(),
          containers: [
            cliContainer("reconcile", t.image, ["prepull", "reconcile", "--policy", PATHS.policyFile, "--namespace", "$(POD_NAMESPACE)", "--image", "$(CACHE_IO_IMAGE)"], {
              env: [
                fieldEnv("POD_NAMESPACE", "metadata.namespace"),
                // The image that provides the no-op binary. deploy/base/kustomize-images.yaml
                // makes kustomize's `images:` rewrite this value along with `image:`.
                { name: "CACHE_IO_IMAGE", value: t.image },
              ],
              resources: structuredClone(res),
              volumeMounts: [policyMount(), tmpMount()],
            }),
          ],
          volumes: [policyVolume(NAMES.policy), tmpVolume()],
        },
      },
    },
  };
}

/** Exactly what reconcile calls: apply (patch, and create for a new object), list, delete. */
export function prepullControllerRbac(namespace: string): [V1Role, V1RoleBinding] {
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: NAMES.prepullController, namespace, labels: labels(component) },
      rules: [{ apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["list", "create", "patch", "delete"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: NAMES.prepullController, namespace, labels: labels(component) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: NAMES.prepullController },
      subjects: [{ kind: "ServiceAccount", name: NAMES.prepullController, namespace }],
    },
  ];
}

export function prepullControllerObjects(t: Target = DEFAULT_TARGET, res: V1ResourceRequirements = PREPULL_CONTROLLER_RESOURCES): KubernetesObject[] {
  return [serviceAccount(NAMES.prepullController, component, true, t.namespace), ...prepullControllerRbac(t.namespace), prepullControllerDeployment(t, res)];
}
