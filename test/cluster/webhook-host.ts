// The real `cache-io webhook` process on the host, and the MutatingWebhookConfiguration
// deploy/ renders registered in the test cluster with only clientConfig rewritten to
// `url: https://127.0.0.1:PORT/<path>` and the real caBundle (plus one namespaceSelector
// term, scopeLabel(), that keeps concurrent test files apart in the shared cluster).
import { spawn, type ChildProcess } from "node:child_process";
import { request } from "node:https";
import { join } from "node:path";
import { parseAllDocuments } from "yaml";
import type { Api } from "./api.js";
import type { ClusterInfo } from "./harness.js";
import { kubectl, until } from "./kube.js";

const ROOT = new URL("../..", import.meta.url).pathname;

export interface HostWebhook {
  port: number;
  child: ChildProcess;
  stdout: () => string;
  exited: Promise<number | null>;
  stop(signal?: NodeJS.Signals): Promise<void>;
}

export async function startHostWebhook(certs: string, args: string[] = []): Promise<HostWebhook> {
  const child = spawn(process.execPath, ["dist/cli/main.js", "webhook", "--port", "0", "--certs", certs, "--no-generate-certs", "--host", "127.0.0.1", ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", CACHE_IO_POLICY: "", CACHE_IO_PORT: "", CACHE_IO_CERTS: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (out += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  const stop = async (signal: NodeJS.Signals = "SIGKILL") => {
    if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    await exited;
  };
  try {
    const port = await until("the webhook's listening line", async () => {
      if (child.exitCode !== null) throw new Error(`webhook exited: ${out}`);
      const m = /listening on https:\/\/127\.0\.0\.1:(\d+)/.exec(out);
      return m ? Number(m[1]) : undefined;
    }, 30_000);
    return { port, child, stdout: () => out, exited, stop };
  } catch (err) {
    await stop();
    throw err;
  }
}

export function metricsText(port: number, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    request({ host: "127.0.0.1", port, path: "/metrics", ca, agent: false }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d));
      res.on("end", () => resolve(text));
    }).on("error", reject).end();
  });
}

/** cache_io_webhook_reviews_total by its reason label. */
export async function reviewsByReason(port: number, ca: string): Promise<Record<string, number>> {
  const out: Record<string, number> = {};
  for (const l of (await metricsText(port, ca)).split("\n")) {
    const m = /^cache_io_webhook_reviews_total\{.*reason="([^"]+)".*\} (\d+)/.exec(l);
    if (m) out[m[1]!] = (out[m[1]!] ?? 0) + Number(m[2]);
  }
  return out;
}

/** cache_io_webhook_reviews_total summed over its labels, from the webhook's /metrics. */
export async function reviewsTotal(port: number, ca: string): Promise<number> {
  const lines = (await metricsText(port, ca)).split("\n").filter((l) => l.startsWith("cache_io_webhook_reviews_total{"));
  return lines.reduce((sum, l) => sum + Number(l.split(" ").pop()), 0);
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Mwc = Record<string, any>;

/** The MutatingWebhookConfiguration from `kubectl kustomize deploy/default`. */
export async function renderedWebhookConfig(c: ClusterInfo): Promise<Mwc> {
  const r = await kubectl(c, ["kustomize", join(ROOT, "deploy/default")]);
  if (r.code !== 0) throw new Error(`kubectl kustomize deploy/default: ${r.stderr}`);
  const docs = parseAllDocuments(r.stdout).map((d) => d.toJS() as Mwc);
  const mwc = docs.find((d) => d?.kind === "MutatingWebhookConfiguration");
  if (!mwc) throw new Error("deploy/default renders no MutatingWebhookConfiguration");
  return mwc;
}

/** The rendered configuration pointed at webhooks on the host (one URL per webhook entry,
 * cycling through `ports`) under a new name, scoped to namespaces labelled scopeLabel(scope). */
export function pointAtHost(mwc: Mwc, name: string, ports: number[], caPem: string, scope: string): Mwc {
  const out = structuredClone(mwc);
  out.metadata = { name, labels: mwc.metadata.labels };
  out.webhooks.forEach((w: Mwc, i: number) => {
    const path = w.clientConfig.service.path;
    w.clientConfig = { url: `https://127.0.0.1:${ports[i % ports.length]}${path}`, caBundle: Buffer.from(caPem).toString("base64") };
    w.namespaceSelector.matchExpressions.push({ key: `cache-io.test/${scope}`, operator: "In", values: ["in"] });
  });
  return out;
}

export async function registerWebhookConfig(api: Api, mwc: Mwc): Promise<void> {
  const path = "/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations";
  await api.req("DELETE", `${path}/${mwc.metadata.name}`);
  await api.must("POST", path, mwc);
}
