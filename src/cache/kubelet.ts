// How the kubelet runs an injected init container's command, for the demo and the
// end-to-end tests: `$(VAR)` expansion of command and args from the container's env,
// then exec with no shell; container paths of emptyDir mounts map to host directories.
import type { V1Container, V1Pod } from "@kubernetes/client-node";
import { execFile } from "node:child_process";
import { join } from "node:path";

/**
 * The kubelet's expansion (k8s.io/kubernetes third_party/forked/golang/expansion):
 * `$$` is a literal `$`, `$(NAME)` is NAME's value when NAME is defined and stays
 * `$(NAME)` otherwise; any other `$` is literal.
 */
export function expandKubeletVars(input: string, vars: Record<string, string>): string {
  let out = "";
  let i = 0;
  while (i < input.length) {
    const c = input[i]!;
    const next = input[i + 1];
    if (c !== "$" || next === undefined) {
      out += c;
      i++;
    } else if (next === "$") {
      out += "$";
      i += 2;
    } else if (next === "(" && input.indexOf(")", i + 2) !== -1) {
      const end = input.indexOf(")", i + 2);
      const name = input.slice(i + 2, end);
      out += Object.hasOwn(vars, name) ? vars[name] : `$(${name})`;
      i = end + 1;
    } else {
      out += c + next;
      i += 2;
    }
  }
  return out;
}

/** The container's env as the kubelet resolves it: literal values (expanded in order) and fieldRefs. */
export function containerEnv(c: V1Container, fieldValues: Record<string, string>): Record<string, string> {
  const vars: Record<string, string> = {};
  for (const e of c.env ?? []) {
    const field = e.valueFrom?.fieldRef?.fieldPath;
    if (e.value !== undefined) vars[e.name] = expandKubeletVars(e.value, vars);
    else if (field !== undefined && field in fieldValues) vars[e.name] = fieldValues[field]!;
  }
  return vars;
}

/** command + args after expansion, with container paths under a `mounts` key rewritten to its host directory. */
export function containerArgv(c: V1Container, fieldValues: Record<string, string>, mounts: Record<string, string> = {}): string[] {
  const vars = containerEnv(c, fieldValues);
  return [...(c.command ?? []), ...(c.args ?? [])].map((a) => {
    const arg = expandKubeletVars(a, vars);
    const prefix = Object.keys(mounts).find((p) => arg === p || arg.startsWith(`${p}/`));
    return prefix ? mounts[prefix] + arg.slice(prefix.length) : arg;
  });
}

export interface InitRun {
  code: number;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Run the container's argv with execFile (no shell); `onStdout` sees the log as it comes. */
export function runInitContainer(
  c: V1Container,
  opts: { fieldValues: Record<string, string>; mounts?: Record<string, string>; onStdout?: (text: string) => void; timeoutMs?: number },
): Promise<InitRun> {
  const [file, ...args] = containerArgv(c, opts.fieldValues, opts.mounts);
  if (!file) throw new Error(`container ${c.name} has no command`);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 * 2 ** 20 }, (err, stdout, stderr) => {
      const code = err ? (typeof err.code === "number" ? err.code : -1) : 0;
      resolve({ code, stdout, stderr, ms: Date.now() - started });
    });
    child.stdout?.on("data", (d: Buffer) => opts.onStdout?.(d.toString()));
  });
}

/**
 * Where a path inside a container lives on the host: through the container's mount of
 * it (the longest mountPath that contains it), a hostPath volume's path plus subPath,
 * or an emptyDir given in `emptyDirs` (volume name -> host directory).
 */
export function hostPathOf(pod: V1Pod, container: string, path: string, emptyDirs: Record<string, string> = {}): string {
  const c = [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])].find((x) => x.name === container);
  const mount = (c?.volumeMounts ?? [])
    .filter((m) => path === m.mountPath || path.startsWith(`${m.mountPath.replace(/\/$/, "")}/`))
    .sort((a, b) => b.mountPath.length - a.mountPath.length)[0];
  if (!mount) throw new Error(`container ${container} has no mount for ${path}`);
  const volume = pod.spec?.volumes?.find((v) => v.name === mount.name);
  const base = volume?.hostPath?.path ?? (volume?.emptyDir ? emptyDirs[volume.name] : undefined);
  if (base === undefined) throw new Error(`volume ${mount.name} is neither a hostPath nor a mapped emptyDir`);
  return join(base, mount.subPath ?? "", path.slice(mount.mountPath.length));
}
