// The whole stack a node test needs, started and stopped as one: the control plane,
// one real node, a local origin, the node cache on the node's bridge address, the real
// webhook registered with the API server, and an opted-in namespace. stop() tears down
// in reverse order and keeps going past a failed step.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { RunningCache } from "../../src/cache/index.js";
import type { Policy } from "../../src/policy/schema.js";
import { NAMESPACE_LABEL } from "../../src/shared/protocol.js";
import { startOrigin, type Origin } from "../support/origin.js";
import { loadPolicy, policyYaml, startNodeCache, startWebhook, writePolicy, type Webhook } from "./cache-io.js";
import { startControlPlane, type ControlPlane } from "./control-plane.js";
import { startNode, type TestNode } from "./node.js";
import { createNamespace } from "./pods.js";
import { freePort } from "./proc.js";
import { buildImages, k8sBinDir, type TestImages } from "./requirements.js";

export interface Stack {
  cp: ControlPlane;
  images: TestImages;
  node: TestNode;
  origin: Origin;
  cache: RunningCache;
  webhook: Webhook;
  policy: Policy;
  dir: string;
  /** The node cache's root (the hostPaths of mount mode are under it). */
  root: string;
  /** An opted-in namespace without a Pod Security label. */
  namespace: string;
  stop(): Promise<void>;
}

export interface StackOptions {
  index: number;
  fetcher?: Record<string, unknown>;
  cache?: Record<string, unknown>;
  /** The node cache watches the node's pods (admin kubeconfig) to know which files are mounted. */
  watchPods?: boolean;
}

export async function startStack(o: StackOptions): Promise<Stack> {
  const images = buildImages();
  const dir = mkdtempSync(join(tmpdir(), "cache-io-nodes-stack-"));
  const root = join(dir, "cache-root");
  const undo: (() => Promise<unknown>)[] = [async () => rmSync(dir, { recursive: true, force: true })];
  const stop = async () => {
    const errors: string[] = [];
    for (const f of undo.reverse()) await f().catch((e: Error) => errors.push(e.message));
    if (errors.length) throw new Error(`stack teardown: ${errors.join("; ")}`);
  };
  try {
    const cp = await startControlPlane(k8sBinDir());
    undo.push(() => cp.stop());
    const node = await startNode({ name: `node-${o.index}`, index: o.index, kube: cp.kube, ca: cp.ca, bin: k8sBinDir(), images: images.tars });
    undo.push(() => node.stop());
    const origin = await startOrigin();
    undo.push(() => origin.close());
    const text = policyYaml({ root, port: await freePort(node.ip), fetcherImage: images.refs.curl, fetcher: o.fetcher, cache: o.cache });
    const policy = loadPolicy(text);
    const cache = await startNodeCache(policy, node.ip, { nodeName: node.name, kubeconfig: cp.kubeconfig }, o.watchPods);
    undo.push(() => cache.close(100));
    const webhook = await startWebhook(cp.kube, k8sBinDir(), dir, writePolicy(dir, text));
    undo.push(() => webhook.stop());
    const namespace = "files";
    await createNamespace(cp.kube, namespace, { [NAMESPACE_LABEL]: "enabled" });
    return { cp, images, node, origin, cache, webhook, policy, dir, root, namespace, stop };
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
}
