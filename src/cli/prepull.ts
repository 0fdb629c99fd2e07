// `cache-io prepull render|reconcile|copy-noop`: thin adapters over src/prepull. Only
// reconcile loads the Kubernetes client, so render and copy-noop start fast.
import { stringify } from "yaml";
import { PolicyStore } from "../policy/store.js";
import { copyNoopBinary } from "../prepull/noop.js";
import { renderPrepull } from "../prepull/render.js";
import { logger } from "../shared/log.js";

interface CommonOptions {
  policy?: string;
  namespace: string;
  image: string;
}

function loadStore(path: string | undefined): PolicyStore {
  if (!path) return PolicyStore.fromDefault();
  return PolicyStore.fromFile(path, { onError: (errors) => logger("prepull").error({ policy: path, errors }, "policy rejected; the last good policy stays in force") });
}

export async function render(opts: CommonOptions & { output: "yaml" | "json" }): Promise<void> {
  const policy = loadStore(opts.policy).current();
  const items = renderPrepull(policy, { namespace: opts.namespace, image: opts.image });
  if (items.length === 0) process.stderr.write("cache-io: the policy lists no prepull.images: nothing to render\n");
  if (opts.output === "json") {
    process.stdout.write(JSON.stringify({ apiVersion: "v1", kind: "List", items }, null, 2) + "\n");
    return;
  }
  process.stdout.write(items.map((i) => stringify(i, { aliasDuplicateObjects: false, lineWidth: 0 })).join("---\n"));
}

export async function reconcile(opts: CommonOptions & { once?: boolean }): Promise<void> {
  const { KubeConfig } = await import("@kubernetes/client-node");
  const { follow, reconcileOnce } = await import("../prepull/reconcile.js");
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const store = loadStore(opts.policy);
  const renderOpts = { namespace: opts.namespace, image: opts.image };
  if (opts.once) {
    await reconcileOnce(kc, store.current(), renderOpts);
    return;
  }
  const stop = new AbortController();
  for (const sig of ["SIGTERM", "SIGINT"] as const) process.once(sig, () => stop.abort());
  await follow(kc, store, renderOpts, stop.signal);
}

export async function copyNoop(opts: { to: string }): Promise<void> {
  copyNoopBinary(opts.to);
  process.stdout.write(`cache-io: copied the no-op binary to ${opts.to}\n`);
}
