// Where the test control plane's binaries are, and whether this machine can have them:
// build.sh (a no-op when the stamps match) when `go` is on PATH, the cached binaries
// when they are there without Go, otherwise a reason the cluster tests use to skip
// (locally) or fail (CI=true).
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

export const TOOLS_DIR = new URL("./tools/", import.meta.url).pathname;
export const NEEDED = ["kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubectl", "etcd", "kwok", "kwok-stages.yaml"] as const;
export const ENABLE_HINT =
  "Install Go 1.26+ (the binaries are built from the Go module proxy by `bash test/cluster/tools/build.sh`, about 7 min cold), then run `npm test` again.";

export function versions(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of readFileSync(join(TOOLS_DIR, "versions.env"), "utf8").split("\n")) {
    const m = /^([A-Z0-9_]+)=(\S+)/.exec(line);
    if (m) out[m[1]!] = m[2]!;
  }
  return out;
}

/** The bin directory build.sh writes to (same rule as the script). */
export function binDir(): string {
  const root = process.env.CACHE_IO_TOOLS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "cache-io");
  return join(root, `k8s-${versions().K8S_VERSION}`, "bin");
}

function hasGo(): boolean {
  return spawnSync("go", ["version"], { stdio: "ignore" }).status === 0;
}

export type Tools = { ok: true; bin: string } | { ok: false; reason: string };

/** Build (or find) the binaries. Progress of a build goes to stderr. */
export function ensureTools(): Tools {
  const bin = binDir();
  const missing = () => [...NEEDED, "../crds/cert-manager", "../crds/prometheus-operator"].filter((b) => !existsSync(join(bin, b)));
  if (hasGo()) {
    try {
      execFileSync("bash", [join(TOOLS_DIR, "build.sh"), "kubernetes", "etcd", "kwok", "crds"], { stdio: ["ignore", "ignore", "inherit"] });
    } catch (err) {
      return { ok: false, reason: `test/cluster/tools/build.sh failed: ${(err as Error).message}` };
    }
  }
  const gone = missing();
  if (!gone.length) return { ok: true, bin };
  return { ok: false, reason: `no ${gone.join(", ")} in ${bin} and no \`go\` on PATH to build them` };
}
