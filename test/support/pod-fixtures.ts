// Realistic pods, policies and AdmissionReviews for the webhook tests, and the
// helpers that apply a review's patch back onto its pod.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import jsonpatch, { type Operation } from "fast-json-patch";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { decide } from "../../src/webhook/decide.js";
import { review, type ReviewResult } from "../../src/webhook/review.js";

export const SHA = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";
export const MODEL = "https://models.example.com/llama-7b.bin";
export const DATA = "https://data.example.com/sets/train.tar";

/** A policy from YAML overrides of the defaults (an empty string is the default policy). */
export function testPolicy(yaml = ""): Policy {
  const r = parsePolicy(yaml);
  if (!r.ok) throw new Error(`test policy is invalid: ${r.errors.join("; ")}`);
  return r.policy;
}

export const app = (name = "app", extra: Partial<V1Container> = {}): V1Container => ({ name, image: `registry.example.com/${name}:1.0`, ...extra });

/** A pod with the given annotations and spec; only the keys given are present. */
export function makePod(annotations: Record<string, string>, spec: V1Pod["spec"] = { containers: [app()] }, meta: V1Pod["metadata"] = { name: "web" }): V1Pod {
  return { apiVersion: "v1", kind: "Pod", metadata: { ...meta, namespace: "default", annotations }, spec };
}

export const files = (value: string, more: Record<string, string> = {}) => ({ "cache.io/files": value, ...more });

/** The realistic pods the table tests run over, keyed by what makes each one special. */
export function realisticPods(): Record<string, V1Pod> {
  const two = files(`${MODEL}#sha256=${SHA}\n${DATA}`);
  return {
    "no env, volumes or initContainers keys": makePod(two),
    "native sidecars and ordinary init containers": makePod(two, {
      initContainers: [
        app("istio-init"),
        app("istio-proxy", { restartPolicy: "Always" }),
        app("vault-agent", { restartPolicy: "Always" }),
        app("migrate"),
      ],
      containers: [app()],
    }),
    "existing NODE_IP": makePod(two, { containers: [app("app", { env: [{ name: "NODE_IP", value: "10.0.0.9" }, { name: "X", value: "1" }] })] }),
    "envFrom only": makePod(two, { containers: [app("app", { envFrom: [{ configMapRef: { name: "settings" } }] })] }),
    "generateName without name": makePod(two, { containers: [app()] }, {
      generateName: "web-7d9f4c6b8-",
      ownerReferences: [{ apiVersion: "apps/v1", kind: "ReplicaSet", name: "web-7d9f4c6b8", uid: "5c1f0e3a-1", controller: true }],
    }),
    ephemeralContainers: makePod(two, { containers: [app()], ephemeralContainers: [{ name: "debugger", image: "busybox" }] }),
    hostNetwork: makePod(two, { hostNetwork: true, dnsPolicy: "ClusterFirstWithHostNet", containers: [app()] }),
    "restricted securityContext": makePod(files(MODEL, { "cache.io/mode": "copy" }), {
      securityContext: { runAsNonRoot: true, runAsUser: 1000, fsGroup: 2000, seccompProfile: { type: "RuntimeDefault" } },
      containers: [app("app", { securityContext: { allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ["ALL"] } } })],
    }),
    "annotation keys with / and ~": makePod({ ...two, "example.com/a~b": "1", "team~x/owner": "ml", "a/b/c": "d" }),
    "two containers with their own volumes": makePod(two, {
      containers: [
        app("app", { volumeMounts: [{ name: "config", mountPath: "/etc/app" }], env: [{ name: "MODE", value: "serve" }] }),
        app("log-shipper", { volumeMounts: [{ name: "logs", mountPath: "/var/log/app" }] }),
      ],
      volumes: [{ name: "config", configMap: { name: "app-config" } }, { name: "logs", emptyDir: {} }],
    }),
  };
}

export interface ReviewOpts {
  operation?: string;
  namespace?: string;
  uid?: string;
  kind?: { group: string; version: string; kind: string };
  subResource?: string;
}

export function admissionReview(pod: unknown, o: ReviewOpts = {}): Record<string, unknown> {
  return {
    apiVersion: "admission.k8s.io/v1",
    kind: "AdmissionReview",
    request: {
      uid: o.uid ?? "705ab4f5-6393-11e8-b7cc-42010a800002",
      kind: o.kind ?? { group: "", version: "v1", kind: "Pod" },
      resource: { group: "", version: "v1", resource: "pods" },
      operation: o.operation ?? "CREATE",
      namespace: o.namespace ?? "default",
      ...(o.subResource ? { subResource: o.subResource } : {}),
      object: pod,
      dryRun: false,
    },
  };
}

/** The response part of a review result. */
export function responseOf(result: ReviewResult): Record<string, unknown> {
  return (result.body as { response: Record<string, unknown> }).response;
}

export function patchOf(result: ReviewResult): Operation[] | undefined {
  const patch = responseOf(result).patch;
  return typeof patch === "string" ? (JSON.parse(Buffer.from(patch, "base64").toString("utf8")) as Operation[]) : undefined;
}

/** The pod as kube-apiserver would store it: the review's patch applied to a copy. */
export function patched(pod: V1Pod, result: ReviewResult): V1Pod {
  const ops = patchOf(result) ?? [];
  return jsonpatch.applyPatch(structuredClone(pod), ops, true, false).newDocument;
}

/** Run a pod through review() and decide(), as the server would in `namespace`. */
export function admit(pod: V1Pod, policy: Policy, opts: { copyOnly?: boolean; namespace?: string; uid?: string } = {}) {
  const copyOnly = opts.copyOnly ?? false;
  const result = review(admissionReview(pod, { namespace: opts.namespace, uid: opts.uid }), policy, { copyOnly });
  const decision = decide(pod, policy, { namespace: opts.namespace ?? "default", copyOnly });
  return { result, decision, after: patched(pod, result) };
}

/** The injected fetcher container of a pod, or undefined. */
export function fetcherOf(pod: V1Pod): V1Container | undefined {
  return pod.spec?.initContainers?.find((c) => c.name === "cache-io-fetch");
}
