// `cache-io check [--pre] [-n NS] [-o text|json]`: run the pre- or post-install checks
// against the kubeconfig's current cluster, print them, and exit 1 when any failed.
import { KubeConfig } from "@kubernetes/client-node";
import { Api } from "./api.js";
import { postInstallChecks } from "./post.js";
import { preInstallChecks } from "./pre.js";
import { formatText, report } from "./report.js";

export interface CheckOptions {
  pre?: boolean;
  namespace: string;
  testNamespace?: string;
  output: "text" | "json";
}

export async function run(opts: CheckOptions): Promise<void> {
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const api = new Api(kc);
  const server = api.server();
  const checks = opts.pre ? await preInstallChecks(api, opts.namespace) : await postInstallChecks(api, opts.namespace, opts.testNamespace);
  const r = report(opts.pre ? "pre-install" : "post-install", opts.namespace, server, checks);
  process.stdout.write(opts.output === "json" ? `${JSON.stringify(r, null, 2)}\n` : formatText(r));
  if (!r.ok) process.exitCode = 1;
}
