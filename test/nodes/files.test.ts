// The heart of cache-io on a real node (issue 9, test 2): a pod annotated with a file
// from a local origin, in an opted-in namespace, mutated by the real webhook behind the
// real API server; the real kubelet runs the injected init container (real curl 8.14
// against the node cache at the real status.hostIP, the node's bridge address); then
// the app container reads the file and checks its sha256, and writing to it fails.
// In mount mode it reads the node cache's own copy (same inode: zero copy, read-only
// subPath); in copy mode and in a Pod Security `restricted` namespace, a copy.
import type { V1Pod } from "@kubernetes/client-node";
import { statSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ANNOTATION, NAMESPACE_LABEL, RESERVED, cacheKey, objectDir } from "../../src/shared/protocol.js";
import { pseudoRandom } from "../support/origin.js";
import { createNamespace, createPod, logs, onNode, waitPhase } from "./pods.js";
import { nodeTestsGate } from "./requirements.js";
import { startStack, type Stack } from "./stack.js";

const gate = nodeTestsGate();
const MIB = 2 ** 20;
const RESTRICTED = {
  runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, allowPrivilegeEscalation: false,
  capabilities: { drop: ["ALL"] }, seccompProfile: { type: "RuntimeDefault" },
};

/** The app: prints the file's sha256 and inode, tries to append to it, prints the options of the mount it sits on. */
function appScript(file: string, mountPoint: string): string {
  return [
    `f=${file}`,
    `m=${mountPoint}`,
    "echo \"sha256=`sha256sum $f | cut -d' ' -f1`\"",
    "echo \"inode=`stat -c %i $f`\"",
    "if echo x >> $f 2>/dev/null; then echo write=allowed; else echo write=denied; fi",
    "echo \"mount=`awk -v m=$m '$2==m {print $4}' /proc/mounts`\"",
  ].join("\n");
}

describe.skipIf(!gate.run)("a pod that asks for a file, on a real node", () => {
  let st: Stack;
  const content = pseudoRandom(8 * MIB + 5, 91);
  let sha256 = "";
  let url = "";
  const kube = () => st.cp.kube;

  beforeAll(async () => {
    st = await startStack({ index: 211 });
    url = st.origin.url("/models/model.bin");
    sha256 = st.origin.put("/models/model.bin", content).sha256;
    st.origin.rateFor.set("/models/model.bin", 4 * MIB); // ~2 s: the init log shows progress
    await createNamespace(kube(), "files-restricted", { [NAMESPACE_LABEL]: "enabled", "pod-security.kubernetes.io/enforce": "restricted" });
  }, 400_000);

  afterAll(async () => {
    await st?.stop();
  }, 200_000);

  function pod(name: string, ns: string, annotations: Record<string, string> = {}, rootWriter = false): V1Pod {
    // mount mode: the file itself is the (subPath) mount; copy mode: the emptyDir at /cache is
    const copy = annotations[ANNOTATION.mode] === "copy" || ns === "files-restricted";
    const script = appScript("/cache/model.bin", copy ? "/cache" : "/cache/model.bin");
    // root in the pod: file permissions cannot stop it, only the read-only mount can.
    const root = { name: "root", image: st.images.refs.busybox, imagePullPolicy: "Never", command: ["/bin/sh", "-c", script], securityContext: { runAsUser: 0, runAsNonRoot: false } };
    return {
      apiVersion: "v1", kind: "Pod",
      metadata: { name, namespace: ns, annotations: { [ANNOTATION.files]: `${url}#sha256=${sha256}`, ...annotations } },
      spec: {
        ...onNode(st.node.name), restartPolicy: "Never",
        containers: [{ name: "app", image: st.images.refs.busybox, imagePullPolicy: "Never", command: ["/bin/sh", "-c", script], securityContext: RESTRICTED }, ...(rootWriter ? [root] : [])],
      },
    };
  }

  async function runToEnd(name: string, ns: string, annotations?: Record<string, string>, rootWriter = false) {
    const created = await createPod(kube(), pod(name, ns, annotations, rootWriter));
    const done = await waitPhase(kube(), ns, name, ["Succeeded", "Failed"]);
    const app = await logs(kube(), ns, name, "app");
    const fetch = await logs(kube(), ns, name, RESERVED.initContainer);
    expect(done.status?.phase, `app log:\n${app}\nfetch log:\n${fetch}`).toBe("Succeeded");
    const root = rootWriter ? await logs(kube(), ns, name, "root") : "";
    return { created, done, app, fetch, root };
  }

  it("mount mode: curl fills the node cache at status.hostIP; the app reads the cache's own file read-only", async () => {
    const r = await runToEnd("mount", "files", {}, true);
    expect(r.created.metadata?.annotations?.[ANNOTATION.status]).toBe("injected");
    expect(r.created.spec?.initContainers?.map((c) => c.name)).toEqual([RESERVED.initContainer]);
    expect(r.done.status?.hostIP).toBe(st.node.ip);
    expect(r.fetch).toMatch(/^fetching model\.bin from 127\.0\.0\.1:\d+/);
    expect(r.fetch).toContain(`done model.bin ${content.length} bytes`);
    expect(r.app).toContain(`sha256=${sha256}`);
    expect(r.app).toContain("write=denied");
    const data = join(objectDir(st.root, cacheKey(url)), "data");
    expect(r.app).toContain(`inode=${statSync(data).ino}`);
    expect(r.app).toMatch(/\nmount=ro,/);
    // root in the pod is refused by the read-only mount itself, not by file permissions
    expect(r.root).toContain(`sha256=${sha256}`);
    expect(r.root).toContain("Read-only file system");
    expect(r.root).toContain("write=denied");
    expect(st.origin.gets("/models/model.bin")).toBe(1);
  }, 300_000);

  it("copy mode: the warm cache answers at once; the app reads its own copy, read-only", async () => {
    const r = await runToEnd("copy", "files", { [ANNOTATION.mode]: "copy" }, true);
    expect(r.created.spec?.volumes?.some((v) => v.hostPath)).toBe(false);
    expect(r.fetch).toMatch(/^cached model\.bin \d+ bytes/);
    expect(r.app).toContain(`sha256=${sha256}`);
    expect(r.app).toContain("write=denied");
    expect(r.app).not.toContain(`inode=${statSync(join(objectDir(st.root, cacheKey(url)), "data")).ino}\n`);
    expect(r.app).toMatch(/\nmount=ro,/);
    expect(r.root).toContain(`sha256=${sha256}`);
    expect(r.root).toContain("Read-only file system");
    expect(st.origin.gets("/models/model.bin")).toBe(1);
  }, 300_000);

  it("a Pod Security restricted namespace: admitted (copy mode, no hostPath), runs, reads the copy", async () => {
    // Pod Security is enforced for real here: a root container is refused.
    const refused = await kube().req("POST", "/api/v1/namespaces/files-restricted/pods", pod("refused", "files-restricted", {}, true));
    expect(refused.status).toBe(403);
    expect(refused.text).toContain("violates PodSecurity \\\"restricted:latest\\\"");
    const r = await runToEnd("restricted", "files-restricted");
    expect(r.created.spec?.volumes?.some((v) => v.hostPath)).toBe(false);
    expect(r.created.spec?.volumes?.some((v) => v.emptyDir)).toBe(true);
    expect(r.app).toMatch(/\nmount=ro,/);
    expect(r.app).toContain(`sha256=${sha256}`);
    expect(r.app).toContain("write=denied");
    expect(st.origin.gets("/models/model.bin")).toBe(1);
  }, 300_000);
});
