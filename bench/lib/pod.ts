// The "pod" of the node benchmarks: the init container that decide() writes for an
// annotated pod, run with real curl (no shell) after the kubelet's $(NODE_IP)
// expansion; in copy mode the container's /cache-io emptyDir becomes a temp directory.
import type { V1Pod } from "@kubernetes/client-node";
import { rmSync, statSync } from "node:fs";
import { join } from "node:path";
import type { Policy } from "../../src/policy/schema.js";
import { OBJECT_FILE, RESERVED } from "../../src/shared/protocol.js";
import { decide } from "../../src/webhook/decide.js";
import { run } from "./proc.js";

export type Mode = "mount" | "copy";

export interface InitPod {
  args: string[];
  /** Where the app would read the file: the hostPath file (mount) or the emptyDir copy (copy). */
  file: string;
}

/** What decide() does to a pod asking for `url` on a node whose cache is described by `policy`. */
export function initPod(policy: Policy, url: string, sha256: string, mode: Mode, copyDir: string): InitPod {
  const pod: V1Pod = {
    apiVersion: "v1",
    kind: "Pod",
    metadata: { name: "bench", namespace: "default", annotations: { "cache.io/files": `${url}#sha256=${sha256}`, "cache.io/mode": mode } },
    spec: { containers: [{ name: "app", image: "registry.example.com/app:1.0" }] },
  };
  const d = decide(pod, policy, { namespace: "default", copyOnly: false });
  if (d.action !== "mutate") throw new Error(`decide() did not inject the benchmark pod: ${JSON.stringify(d)}`);
  const init = d.pod.spec?.initContainers?.find((c) => c.name === RESERVED.initContainer);
  if (!init?.args || init.command?.[0] !== "curl") throw new Error("the injected pod has no curl init container");
  const args = init.args.map((a) => a.replaceAll(`$(${RESERVED.nodeIpEnv})`, "127.0.0.1").replace(new RegExp(`^${RESERVED.copyDir}/`), `${copyDir}/`));
  if (mode === "copy") {
    const out = args.find((a) => a.startsWith(`${copyDir}/`));
    if (!out) throw new Error("copy-mode init container writes no file");
    return { args, file: out };
  }
  const volume = d.pod.spec?.volumes?.find((v) => v.hostPath);
  if (!volume?.hostPath) throw new Error("mount-mode pod has no hostPath volume");
  return { args, file: join(volume.hostPath.path, OBJECT_FILE) };
}

/** Run the init container's curl; resolves with ms until the file is usable (complete, right size). */
export async function runInit(pod: InitPod, size: number, timeoutMs = 600_000): Promise<number> {
  const r = await run("curl", pod.args, timeoutMs);
  const got = statSync(pod.file).size;
  if (got !== size) throw new Error(`after the init container, ${pod.file} has ${got} bytes, not ${size}`);
  return r.ms;
}

/** A plain curl download to a file, as the seed's pods did (no cache-io involved). */
export async function download(url: string, out: string, size: number): Promise<number> {
  try {
    const r = await run("curl", ["-q", "--silent", "--show-error", "--fail", "-o", out, url], 600_000);
    const got = statSync(out).size;
    if (got !== size) throw new Error(`curl ${url} wrote ${got} bytes, not ${size}`);
    return r.ms;
  } finally {
    rmSync(out, { force: true });
  }
}
