// The cache-io-fetch init container: curl with no shell, asking the node cache for
// each file. Every user value is a strictly percent-encoded query parameter or a
// validated file name, so neither a shell nor the kubelet's $(VAR) expansion is reachable.
import type { V1Container } from "@kubernetes/client-node";
import type { Policy } from "../policy/schema.js";
import { ensurePath, objectPath, RESERVED } from "../shared/protocol.js";
import type { Mode } from "./annotations.js";
import { nodeIpEnv } from "./env.js";
import type { FileRequest } from "./files.js";
import { tokenCurlArgs, tokenMounts } from "./token.js";
import { fetcherMounts } from "./volumes.js";

/** The cache's base URL as the container sees it; the kubelet expands $(NODE_IP). */
export function cacheBase(policy: Policy): string {
  return `http://$(${RESERVED.nodeIpEnv}):${policy.cache.port}`;
}

export function curlArgs(files: FileRequest[], mode: Mode, policy: Policy): string[] {
  // Global options first; then the ensures, and in copy mode a --next group of the copies.
  const args = ["-q", /* first: ignore any .curlrc */ "--silent", "--show-error", "--fail-early", ...tokenCurlArgs(policy).global];
  // Transfers run side by side: a copy streams the file while it fills (the ensure beside it
  // shows progress and fails loudly, and --fail-early then stops the copy), and a pod's
  // files fill at once instead of one after another.
  if (mode === "copy" || files.length > 1) args.push("--parallel", "--parallel-immediate", "--parallel-max", String(FILES_AT_ONCE * (mode === "copy" ? 2 : 1)));
  const base = cacheBase(policy);
  // ensure's body is progress text: -o - puts it in the container log.
  args.push(...transferArgs(policy, ENSURE_STALL_SECONDS), ...files.flatMap((f) => ["-o", "-", base + ensurePath(f.key, f.url, f.sha256)]));
  if (mode === "copy") {
    args.push("--next", ...transferArgs(policy, COPY_STALL_SECONDS), ...files.flatMap((f) => ["-o", `${RESERVED.copyDir}/${f.name}`, base + objectPath(f.key, f.url, f.sha256)]));
  }
  return args;
}

/** An ensure writes a progress line every 2 s: this long without a byte means the cache or the connection is gone. */
export const ENSURE_STALL_SECONDS = 120;
/**
 * A copy gets no byte while its file cannot be streamed yet (a fill whose origin sends no
 * length, a revalidation that refills, a new sha256 pin: they are served once complete);
 * the ensure beside it watches the fill, so the copy only needs to notice a dead connection.
 */
export const COPY_STALL_SECONDS = 600;

/** The options of one group of transfers (curl resets them at --next). */
function transferArgs(policy: Policy, stallSeconds: number): string[] {
  return [
    "--fail", "--globoff", "--proto", "=http", "--connect-timeout", "5",
    "--speed-limit", "1", "--speed-time", String(stallSeconds),
    "--retry", String(policy.fetcher.retries), "--retry-all-errors", "--retry-delay", "2",
    ...tokenCurlArgs(policy).perGroup,
  ];
}

/**
 * Files one init container fetches at once: the node cache's default fills per namespace
 * (8). A copy-mode file is two transfers (its ensure and its copy; curl starts them in
 * order, all ensures first), so copy mode allows twice as many.
 */
export const FILES_AT_ONCE = 8;

export function fetchContainer(files: FileRequest[], mode: Mode, policy: Policy, resources = policy.fetcher.resources): V1Container {
  const { fetcher } = policy;
  const mounts = [...fetcherMounts(mode), ...tokenMounts(policy)];
  return {
    name: RESERVED.initContainer,
    image: fetcher.image,
    imagePullPolicy: fetcher.imagePullPolicy,
    command: ["curl"],
    args: curlArgs(files, mode, policy),
    env: [nodeIpEnv()],
    resources: JSON.parse(JSON.stringify(resources)) as V1Container["resources"],
    securityContext: {
      runAsNonRoot: true,
      runAsUser: fetcher.runAsUser,
      runAsGroup: fetcher.runAsUser,
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ["ALL"] },
      seccompProfile: { type: "RuntimeDefault" },
    },
    // A failed fetch shows curl's error in the pod's status, not only in its log.
    terminationMessagePolicy: "FallbackToLogsOnError",
    ...(mounts.length ? { volumeMounts: mounts } : {}),
  };
}

/** Right after the last native sidecar (restartPolicy: Always), or first. */
export function insertFetcher(initContainers: V1Container[], fetcher: V1Container): V1Container[] {
  const lastSidecar = initContainers.findLastIndex((c) => c.restartPolicy === "Always");
  return [...initContainers.slice(0, lastSidecar + 1), fetcher, ...initContainers.slice(lastSidecar + 1)];
}
