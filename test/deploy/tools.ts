// External CLIs some deploy tests need (promtool from Debian's `prometheus` package;
// helm and actionlint from test/cluster/tools/build.sh). Missing locally: the tests
// that need one skip with a loud message. Missing under CI=true: they fail, so CI can
// never pass by skipping them.
import { execFileSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join } from "node:path";
import { it } from "vitest";

export interface Tool {
  name: string;
  path: string | undefined;
  hint: string;
}

export const IN_CI = process.env.CI === "true";

function onPath(name: string): string | undefined {
  try {
    return execFileSync("sh", ["-c", `command -v ${name}`], { encoding: "utf8" }).trim() || undefined;
  } catch {
    return undefined;
  }
}

/** The bin directory build.sh installs into, without building anything. */
export function clusterToolsBin(): string | undefined {
  try {
    const env = execFileSync("sh", ["-c", ". test/cluster/tools/versions.env && echo $K8S_VERSION"], { encoding: "utf8" }).trim();
    const root = process.env.CACHE_IO_TOOLS_DIR ?? join(process.env.XDG_CACHE_HOME ?? join(process.env.HOME ?? "/root", ".cache"), "cache-io");
    return join(root, `k8s-${env}`, "bin");
  } catch {
    return undefined;
  }
}

export function findTool(name: string, hint: string): Tool {
  const bin = clusterToolsBin();
  const built = bin && existsSync(join(bin, name)) ? join(bin, name) : undefined;
  const path = built ?? onPath(name);
  if (!path) {
    const msg = `\n!!!!!!!! ${name} not found: its tests are SKIPPED here (and FAIL under CI=true). ${hint} !!!!!!!!\n`;
    process.stderr.write(msg);
  }
  return { name, path, hint };
}

/** `it` when the tool is there or under CI (where a missing tool then fails the test), else `it.skip`. */
export function itWith(tool: Tool) {
  return it.skipIf(!tool.path && !IN_CI);
}

/** The tool's path; throws (failing the test) with the install hint when it is missing. */
export function toolPath(tool: Tool): string {
  if (!tool.path) throw new Error(`${tool.name} is required under CI=true and was not found. ${tool.hint}`);
  return tool.path;
}
