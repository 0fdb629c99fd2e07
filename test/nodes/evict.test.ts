// Issue 9 test 5 (eviction half) on a real node: the node cache watches its node's pods
// and never evicts a file a running pod mounts. Over budget, the least recently used
// file that no running pod mounts goes instead; once the pod is gone, its file can go.
// The running pod keeps reading its file throughout (kubectl exec through the kubelet).
import type { V1Pod } from "@kubernetes/client-node";
import { execFile } from "node:child_process";
import { existsSync, statSync } from "node:fs";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION, cacheKey, objectDir } from "../../src/shared/protocol.js";
import { pseudoRandom } from "../support/origin.js";
import { createPod, logs, onNode, waitPhase } from "./pods.js";
import { waitFor } from "./proc.js";
import { k8sBinDir, nodeTestsGate } from "./requirements.js";
import { startStack, type Stack } from "./stack.js";

const gate = nodeTestsGate();
const MIB = 2 ** 20;

describe.skipIf(!gate.run)("eviction on a real node", () => {
  let st: Stack;
  const files = ["a", "b", "c", "d"].map((n, i) => ({ name: `${n}.bin`, content: pseudoRandom(8 * MIB, 100 + i), sha256: "", url: "" }));
  const data = (url: string) => join(objectDir(st.root, cacheKey(url)), "data");

  beforeAll(async () => {
    // Room for two 8 MiB files; a request counts as recent for 1 s only, and recent
    // requests protect nothing (recentUseShare 0): only mounts protect.
    st = await startStack({ index: 213, watchPods: true, cache: { diskBudget: "20Mi", recentUseWindow: "1s", recentUseShare: 0 } });
    for (const f of files) {
      f.sha256 = st.origin.put(`/${f.name}`, f.content).sha256;
      f.url = st.origin.url(`/${f.name}`);
    }
  }, 400_000);

  afterAll(async () => {
    await st?.stop();
  }, 300_000);

  function pod(name: string, f: (typeof files)[number], script: string): V1Pod {
    return {
      apiVersion: "v1", kind: "Pod",
      metadata: { name, namespace: st.namespace, annotations: { [ANNOTATION.files]: `${f.url}#sha256=${f.sha256}` } },
      spec: {
        ...onNode(st.node.name), restartPolicy: "Never", automountServiceAccountToken: false, terminationGracePeriodSeconds: 1,
        containers: [{ name: "app", image: st.images.refs.busybox, imagePullPolicy: "Never", command: ["/bin/sh", "-c", script] }],
      },
    };
  }

  async function runOnce(name: string, f: (typeof files)[number]): Promise<void> {
    await createPod(st.cp.kube, pod(name, f, `sha256sum /cache/${f.name}`));
    const p = await waitPhase(st.cp.kube, st.namespace, name, ["Succeeded", "Failed"]);
    expect(p.status?.phase, await logs(st.cp.kube, st.namespace, name, "app")).toBe("Succeeded");
    await new Promise((r) => setTimeout(r, 1500)); // past recentUseWindow
  }

  const exec = (name: string, cmd: string[]) =>
    promisify(execFile)(join(k8sBinDir(), "kubectl"), ["--kubeconfig", st.cp.kubeconfig, "exec", "-n", st.namespace, name, "-c", "app", "--", ...cmd], { timeout: 60_000 });

  it("a file a running pod mounts survives a fill that needs room; the LRU unmounted file goes", async () => {
    const [a, b, c, d] = files as [typeof files[0], typeof files[0], typeof files[0], typeof files[0]];
    await createPod(st.cp.kube, pod("reader", a, `sha256sum /cache/${a.name}; exec sleep 3600`));
    await waitPhase(st.cp.kube, st.namespace, "reader", ["Running"]);
    await waitFor("the reader's first read", async () => ((await logs(st.cp.kube, st.namespace, "reader", "app")).includes(a.sha256) ? true : undefined), { timeoutMs: 60_000 });
    await new Promise((r) => setTimeout(r, 1500));
    const inode = statSync(data(a.url)).ino;
    await runOnce("b", b); // a (older) and b: the budget is full
    await runOnce("c", c); // needs room: a is the LRU file but mounted by a running pod
    expect(existsSync(data(a.url))).toBe(true);
    expect(statSync(data(a.url)).ino).toBe(inode);
    expect(existsSync(data(b.url))).toBe(false);
    expect(existsSync(data(c.url))).toBe(true);
    expect((await exec("reader", ["sha256sum", `/cache/${a.name}`])).stdout).toContain(a.sha256);
    expect(st.origin.gets(`/${a.name}`)).toBe(1);

    // Once the reader is gone, a's file is evictable like any other.
    await st.cp.kube.req("DELETE", `/api/v1/namespaces/${st.namespace}/pods/reader`, { gracePeriodSeconds: 1 });
    await waitFor("the reader pod gone", async () => ((await st.cp.kube.get(`/api/v1/namespaces/${st.namespace}/pods/reader`)).status === 404 ? true : undefined), { timeoutMs: 60_000 });
    await runOnce("d", d);
    expect(existsSync(data(a.url))).toBe(false);
    expect(existsSync(data(c.url))).toBe(true);
    expect(existsSync(data(d.url))).toBe(true);
  }, 400_000);
});
