// The webhook's Deployment, Service, PodDisruptionBudget and ServiceAccount. It makes
// no API calls, so it gets no RBAC and no service account token.
import type { KubernetesObject, V1Deployment, V1PodDisruptionBudget, V1ResourceRequirements, V1Service, V1ServiceAccount } from "@kubernetes/client-node";
import { DEFAULT_TARGET, NAMES, PATHS, SERVICE_PORT, WEBHOOK_PORT, labels, selectorLabels, type Target } from "./names.js";
import { cliContainer, policyMount, policyVolume, resources, restrictedPod, tmpMount, tmpVolume } from "./security.js";

const component = "webhook";

export function webhookArgs(): string[] {
  return [
    "webhook",
    "--host", "0.0.0.0",
    "--port", String(WEBHOOK_PORT),
    "--certs", PATHS.certsDir,
    "--no-generate-certs",
    "--policy", PATHS.policyFile,
  ];
}

function probe(path: string, periodSeconds: number, failureThreshold: number) {
  return { httpGet: { scheme: "HTTPS", path, port: "https" }, periodSeconds, failureThreshold, timeoutSeconds: 2 };
}

/** Replicas and resources are parameters so the Helm chart can make them values. */
export interface WebhookShape {
  replicas: number;
  resources: V1ResourceRequirements;
}

export const WEBHOOK_SHAPE: WebhookShape = { replicas: 2, resources: resources({ cpu: "50m", memory: "96Mi" }, { cpu: "1", memory: "256Mi" }) };

export function webhookDeployment(t: Target = DEFAULT_TARGET, shape: WebhookShape = WEBHOOK_SHAPE): V1Deployment {
  return {
    apiVersion: "apps/v1",
    kind: "Deployment",
    metadata: { name: NAMES.webhook, namespace: t.namespace, labels: labels(component) },
    spec: {
      replicas: shape.replicas,
      revisionHistoryLimit: 5,
      selector: { matchLabels: selectorLabels(component) },
      // Never fewer than 2 ready replicas while rolling out.
      strategy: { type: "RollingUpdate", rollingUpdate: { maxSurge: 1, maxUnavailable: 0 } },
      template: {
        metadata: { labels: labels(component) },
        spec: {
          serviceAccountName: NAMES.webhook,
          automountServiceAccountToken: false,
          enableServiceLinks: false,
          priorityClassName: NAMES.priorityClass,
          securityContext: restrictedPod(),
          affinity: {
            podAntiAffinity: {
              preferredDuringSchedulingIgnoredDuringExecution: [
                { weight: 100, podAffinityTerm: { topologyKey: "kubernetes.io/hostname", labelSelector: { matchLabels: selectorLabels(component) } } },
              ],
            },
          },
          containers: [
            cliContainer("webhook", t.image, webhookArgs(), {
              ports: [{ name: "https", containerPort: WEBHOOK_PORT, protocol: "TCP" }],
              readinessProbe: probe("/readyz", 5, 3),
              livenessProbe: probe("/healthz", 10, 3),
              resources: structuredClone(shape.resources),
              volumeMounts: [{ name: "certs", mountPath: PATHS.certsDir, readOnly: true }, policyMount(), tmpMount()],
            }),
          ],
          volumes: [
            // Only what serving needs: the CA key stays in the Secret, out of this pod.
            { name: "certs", secret: { secretName: NAMES.tlsSecret, items: ["tls.crt", "tls.key", "ca.crt"].map((k) => ({ key: k, path: k })) } },
            policyVolume(NAMES.policy),
            tmpVolume(),
          ],
        },
      },
    },
  };
}

export function webhookService(t: Target = DEFAULT_TARGET): V1Service {
  return {
    apiVersion: "v1",
    kind: "Service",
    metadata: { name: NAMES.webhook, namespace: t.namespace, labels: labels(component) },
    spec: {
      type: "ClusterIP",
      selector: selectorLabels(component),
      ports: [{ name: "https", port: SERVICE_PORT, targetPort: "https", protocol: "TCP" }],
    },
  };
}

export function webhookPdb(t: Target = DEFAULT_TARGET): V1PodDisruptionBudget {
  return {
    apiVersion: "policy/v1",
    kind: "PodDisruptionBudget",
    metadata: { name: NAMES.webhook, namespace: t.namespace, labels: labels(component) },
    spec: { minAvailable: 1, selector: { matchLabels: selectorLabels(component) } },
  };
}

export function serviceAccount(name: string, component: Parameters<typeof labels>[0], automount: boolean, namespace: string): V1ServiceAccount {
  return {
    apiVersion: "v1",
    kind: "ServiceAccount",
    metadata: { name, namespace, labels: labels(component) },
    automountServiceAccountToken: automount,
  };
}

export function webhookObjects(t: Target = DEFAULT_TARGET, shape: WebhookShape = WEBHOOK_SHAPE): KubernetesObject[] {
  return [serviceAccount(NAMES.webhook, component, false, t.namespace), webhookDeployment(t, shape), webhookService(t), webhookPdb(t)];
}
