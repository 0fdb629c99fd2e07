// The pre-pull controller: one replica of `cache-io prepull reconcile`, which renders the
// pre-pull DaemonSets from the policy ConfigMap and keeps them in sync.
import type { KubernetesObject, V1Deployment, V1Role, V1RoleBinding } from "@kubernetes/client-node";
import { IMAGE, NAMES, NAMESPACE, PATHS, labels, selectorLabels } from "./names.js";
import { cliContainer, fieldEnv, policyMount, policyVolume, resources, restrictedPod, tmpMount, tmpVolume } from "./security.js";
import { serviceAccount } from "./webhook.js";

const component = "prepull-controller";

export function prepullControllerDeployment(image = IMAGE): V1Deployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: NAMES.prepullController, namespace: NAMESPACE, labels: labels(component) },
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
            cliContainer("reconcile", image, ["prepull", "reconcile", "--policy", PATHS.policyFile, "--namespace", "$(POD_NAMESPACE)", "--image", "$(CACHE_IO_IMAGE)"], {
              env: [
                fieldEnv("POD_NAMESPACE", "metadata.namespace"),
                // The image that provides the no-op binary. deploy/base/kustomize-images.yaml
                // makes kustomize's `images:` rewrite this value along with `image:`.
                { name: "CACHE_IO_IMAGE", value: image },
              ],
              resources: resources({ cpu: "10m", memory: "64Mi" }, { cpu: "200m", memory: "192Mi" }),
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
export function prepullControllerRbac(): [V1Role, V1RoleBinding] {
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: NAMES.prepullController, namespace: NAMESPACE, labels: labels(component) },
      rules: [{ apiGroups: ["apps"], resources: ["daemonsets"], verbs: ["list", "create", "patch", "delete"] }],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: NAMES.prepullController, namespace: NAMESPACE, labels: labels(component) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: NAMES.prepullController },
      subjects: [{ kind: "ServiceAccount", name: NAMES.prepullController, namespace: NAMESPACE }],
    },
  ];
}

export function prepullControllerObjects(image = IMAGE): KubernetesObject[] {
  return [serviceAccount(NAMES.prepullController, component, true), ...prepullControllerRbac(), prepullControllerDeployment(image)];
}
