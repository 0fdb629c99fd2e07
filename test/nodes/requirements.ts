// Whether this machine can run real test nodes, and the images they use. The node tests
// run under CI=true and are opt-in locally (CACHE_IO_NODE_TESTS=1); once on, a missing piece
// (root, containerd, runc, CNI plugins, the k8s binaries, the images) skips them with a
// loud message locally and fails them under CI=true.
import { execFileSync, spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";

const ROOT = new URL("../../", import.meta.url).pathname;
export const BIN_NEEDED = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kubectl"];

export function k8sBinDir(): string {
  const env = readFileSync(join(ROOT, "test/cluster/tools/versions.env"), "utf8");
  const version = /^K8S_VERSION=(\S+)/m.exec(env)?.[1];
  const cache = process.env.CACHE_IO_TOOLS_DIR || join(process.env.XDG_CACHE_HOME || join(homedir(), ".cache"), "cache-io");
  return join(cache, `k8s-${version}`, "bin");
}

export interface TestImages {
  pause: string;
  curl: string;
  busybox: string;
  tars: string[];
  refs: { curl: string; busybox: string };
}

/** Build (or reuse from ~/.cache/cache-io/images) the pause, curl and busybox images. */
export function buildImages(): TestImages {
  const dir = execFileSync("bash", [join(ROOT, "test/nodes/images/build.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim().split("\n").pop()!;
  const t = (n: string) => join(dir, `${n}.tar`);
  return { pause: t("pause"), curl: t("curl"), busybox: t("busybox"), tars: [t("pause"), t("curl"), t("busybox")], refs: { curl: "cache-io.test/curl:8.14.1", busybox: "cache-io.test/busybox:1" } };
}

/** The project's image from its own Dockerfile (podman), as a docker-save archive; ref cache-io.test/cache-io:dev. */
export function buildProjectImage(): { tar: string; ref: string } {
  const out = execFileSync("bash", [join(ROOT, "test/nodes/images/build-project.sh")], { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"], timeout: 1_500_000 });
  return { tar: out.trim().split("\n").pop()!, ref: "cache-io.test/cache-io:dev" };
}

function missing(): string[] {
  const out: string[] = [];
  if (process.getuid?.() !== 0) out.push("root (containerd, bridges and mounts need it)");
  for (const [cmd, pkg] of [["containerd", "containerd"], ["ctr", "containerd"], ["runc", "runc"], ["ip", "iproute2"], ["iptables", "iptables"], ["gcc", "gcc"], ["apt-get", "apt"], ["dpkg-deb", "dpkg"], ["podman", "podman"], ["debootstrap", "debootstrap"]]) {
    if (spawnSync("sh", ["-c", `command -v ${cmd}`], { stdio: "ignore" }).status !== 0) out.push(`${cmd} (apt-get install -y ${pkg})`);
  }
  if (!existsSync("/usr/sbin/runc")) out.push("/usr/sbin/runc (apt-get install -y runc)");
  if (!existsSync("/usr/lib/cni/bridge")) out.push("/usr/lib/cni/bridge (apt-get install -y containernetworking-plugins)");
  const bin = k8sBinDir();
  const gone = BIN_NEEDED.filter((b) => !existsSync(join(bin, b)));
  if (gone.length) out.push(`${gone.join(", ")} in ${bin} (bash test/cluster/tools/build.sh kubernetes etcd)`);
  return out;
}

export type Gate = { run: true } | { run: false; reason: string };

/** Decide once per file; print why the node tests do not run, loudly. Throws under CI=true when opted in but unable. */
export function nodeTestsGate(): Gate {
  const wanted = process.env.CACHE_IO_NODE_TESTS === "1" || (process.env.CI === "true" && process.env.CACHE_IO_NODE_TESTS !== "0");
  if (!wanted) {
    const reason = "real-node tests are opt-in locally (they need root and take minutes): run them with CACHE_IO_NODE_TESTS=1 (root, containerd, runc, containernetworking-plugins, podman, debootstrap, the k8s binaries; see docs/TEST-NODES.md); under CI=true they run by default";
    console.warn(`\n*** SKIPPED: ${reason}\n`);
    return { run: false, reason };
  }
  const m = missing();
  if (!m.length) return { run: true };
  const reason = `real-node tests cannot run on this machine: missing ${m.join("; ")}`;
  if (process.env.CI === "true") throw new Error(reason);
  console.warn(`\n*** SKIPPED: ${reason}\n`);
  return { run: false, reason };
}
