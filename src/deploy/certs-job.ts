// The cert bootstrap: a Job that runs `cache-io certs install` once at install time,
// a CronJob that runs it daily to renew before expiry, and the least RBAC it needs.
import type { KubernetesObject, V1ClusterRole, V1ClusterRoleBinding, V1CronJob, V1Job, V1JobSpec, V1Role, V1RoleBinding } from "@kubernetes/client-node";
import { DEFAULT_TARGET, NAMES, labels, type Target } from "./names.js";
import { cliContainer, fieldEnv, resources, restrictedPod, tmpMount, tmpVolume } from "./security.js";
import { serviceAccount } from "./webhook.js";

const component = "certs";

export function certsArgs(): string[] {
  return [
    "certs", "install",
    "--namespace", "$(POD_NAMESPACE)",
    "--service", NAMES.webhook,
    "--secret", NAMES.tlsSecret,
    "--webhook-config", NAMES.webhookConfig,
    "--days", "365",
    "--renew-before", "30",
  ];
}

function jobSpec(image: string): V1JobSpec {
  return {
    backoffLimit: 6,
    // Deleted a while after it finishes, so the next `kubectl apply -k` (an upgrade)
    // recreates it instead of failing on the immutable pod template.
    ttlSecondsAfterFinished: 600,
    template: {
      metadata: { labels: labels(component) },
      spec: {
        serviceAccountName: NAMES.certs,
        restartPolicy: "Never",
        enableServiceLinks: false,
        securityContext: restrictedPod(),
        containers: [
          cliContainer("certs", image, certsArgs(), {
            env: [fieldEnv("POD_NAMESPACE", "metadata.namespace")],
            resources: resources({ cpu: "50m", memory: "64Mi" }, { cpu: "500m", memory: "256Mi" }),
            volumeMounts: [tmpMount()],
          }),
        ],
        volumes: [tmpVolume()],
      },
    },
  };
}

export function certsJob(t: Target = DEFAULT_TARGET, name: string = NAMES.certs): V1Job {
  return {
    apiVersion: "batch/v1",
    kind: "Job",
    metadata: { name, namespace: t.namespace, labels: labels(component) },
    spec: jobSpec(t.image),
  };
}

export function certsCronJob(t: Target = DEFAULT_TARGET): V1CronJob {
  return {
    apiVersion: "batch/v1",
    kind: "CronJob",
    metadata: { name: NAMES.certsRenew, namespace: t.namespace, labels: labels(component) },
    spec: {
      // Daily; a run renews only when fewer than --renew-before days remain.
      schedule: "17 3 * * *",
      concurrencyPolicy: "Forbid",
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 1,
      failedJobsHistoryLimit: 3,
      jobTemplate: { metadata: { labels: labels(component) }, spec: jobSpec(t.image) },
    },
  };
}

/**
 * Exactly the calls `certs install` makes (test/deploy/rbac.test.ts checks this
 * against the requests it records). `create` cannot be limited by resourceNames: the
 * RBAC authorizer does not see the name of an object being created.
 */
export function certsRbac(namespace: string): [V1Role, V1RoleBinding, V1ClusterRole, V1ClusterRoleBinding] {
  const subjects = [{ kind: "ServiceAccount", name: NAMES.certs, namespace }];
  return [
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "Role",
      metadata: { name: NAMES.certs, namespace, labels: labels(component) },
      rules: [
        { apiGroups: [""], resources: ["secrets"], resourceNames: [NAMES.tlsSecret], verbs: ["get", "update"] },
        { apiGroups: [""], resources: ["secrets"], verbs: ["create"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "RoleBinding",
      metadata: { name: NAMES.certs, namespace, labels: labels(component) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "Role", name: NAMES.certs },
      subjects,
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRole",
      metadata: { name: NAMES.certs, labels: labels(component) },
      rules: [
        { apiGroups: ["admissionregistration.k8s.io"], resources: ["mutatingwebhookconfigurations"], resourceNames: [NAMES.webhookConfig], verbs: ["get", "patch"] },
      ],
    },
    {
      apiVersion: "rbac.authorization.k8s.io/v1",
      kind: "ClusterRoleBinding",
      metadata: { name: NAMES.certs, labels: labels(component) },
      roleRef: { apiGroup: "rbac.authorization.k8s.io", kind: "ClusterRole", name: NAMES.certs },
      subjects: subjects.map((s) => ({ ...s })),
    },
  ];
}

/** `jobName`: the Helm chart names the Job per release revision (a Job's template is immutable). */
export function certsObjects(t: Target = DEFAULT_TARGET, jobName: string = NAMES.certs): KubernetesObject[] {
  return [serviceAccount(NAMES.certs, component, true, t.namespace), ...certsRbac(t.namespace), certsJob(t, jobName), certsCronJob(t)];
}
