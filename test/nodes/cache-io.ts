// cache-io on the test nodes' host: one policy for the webhook and the node cache
// (fetcher image = the locally built curl image, never pulled; origins on loopback),
// the node cache bound to a node's bridge address, the real `cache-io webhook` process
// on 127.0.0.1, and the MutatingWebhookConfiguration deploy/default renders registered
// with only clientConfig rewritten to that URL and the real caBundle.
import { execFileSync } from "node:child_process";
import { chmodSync, mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { KubeConfig } from "@kubernetes/client-node";
import { parseAllDocuments } from "yaml";
import { startCache, type RunningCache } from "../../src/cache/index.js";
import { caBundleBase64, generateBundle, writeBundle } from "../../src/certs/generate.js";
import { parsePolicy } from "../../src/policy/load.js";
import type { Policy } from "../../src/policy/schema.js";
import { startHostWebhook, type HostWebhook } from "../cluster/webhook-host.js";
import type { Kube } from "./kube.js";

const ROOT = new URL("../../", import.meta.url).pathname;

export interface PolicyInput {
  root: string;
  port: number;
  fetcherImage: string;
  /** Merged into the policy's `fetcher` and `cache` sections. */
  fetcher?: Record<string, unknown>;
  cache?: Record<string, unknown>;
}

/** The policy as YAML (JSON is YAML). */
export function policyYaml(p: PolicyInput): string {
  return JSON.stringify({
    origins: { allow: ["127.0.0.1"], allowPrivate: ["127.0.0.1"] },
    fetcher: { image: p.fetcherImage, imagePullPolicy: "Never", retries: 3, ...p.fetcher },
    cache: { root: p.root, port: p.port, ...p.cache },
  }, null, 2);
}

export function loadPolicy(text: string): Policy {
  const r = parsePolicy(text);
  if (!r.ok) throw new Error(`test policy is invalid: ${r.errors.join("; ")}`);
  return r.policy;
}

/**
 * The node cache on the host, bound to one node's bridge address (what its pods reach as
 * status.hostIP). It verifies the pods' projected tokens (identity.mode required, the
 * default) against the API server's keys read with `node.kubeconfig`; with `watchPods` it
 * also watches the node's pods to know which files are mounted.
 */
export async function startNodeCache(policy: Policy, host: string, node: { nodeName: string; kubeconfig: string }, watchPods = false): Promise<RunningCache> {
  mkdirSync(policy.cache.root, { recursive: true });
  chmodSync(policy.cache.root, 0o755);
  const kc = new KubeConfig();
  kc.loadFromFile(node.kubeconfig);
  return startCache({ root: policy.cache.root, host, port: policy.cache.port, policy: () => policy, nodeName: node.nodeName, identityKubeConfig: kc, kubeConfig: watchPods ? kc : null });
}

export interface Webhook {
  host: HostWebhook;
  stop(): Promise<void>;
}

/** Start `cache-io webhook` with `policyFile` and register it for the cluster. */
export async function startWebhook(kube: Kube, bin: string, dir: string, policyFile: string): Promise<Webhook> {
  const certs = join(dir, "webhook-certs");
  const bundle = await generateBundle({ dnsNames: ["localhost"], ips: ["127.0.0.1"] });
  writeBundle(certs, bundle);
  const host = await startHostWebhook(certs, ["--policy", policyFile]);
  try {
    const rendered = execFileSync(join(bin, "kubectl"), ["kustomize", join(ROOT, "deploy/default")], { encoding: "utf8" });
    const mwc = parseAllDocuments(rendered).map((d) => d.toJS()).find((d) => d?.kind === "MutatingWebhookConfiguration");
    if (!mwc) throw new Error("deploy/default renders no MutatingWebhookConfiguration");
    for (const w of mwc.webhooks) w.clientConfig = { url: `https://127.0.0.1:${host.port}${w.clientConfig.service.path}`, caBundle: caBundleBase64(bundle) };
    const path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
    await kube.req("DELETE", `${path}/${mwc.metadata.name}`);
    await kube.must("POST", path, mwc);
    return { host, stop: () => host.stop("SIGTERM") };
  } catch (err) {
    await host.stop();
    throw err;
  }
}

export function writePolicy(dir: string, text: string): string {
  const f = join(dir, "policy.yaml");
  writeFileSync(f, text);
  return f;
}
