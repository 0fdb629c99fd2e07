// The version of this build, from the package.json that ships beside dist/ (the repo,
// the npm package and the image all have it at the same relative place), so it is right
// wherever the binary runs, also inside another project's npm script.
import { readFileSync } from "node:fs";

function readVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as { name?: string; version?: string };
    if (pkg.name === "cache-io" && typeof pkg.version === "string") return pkg.version;
  } catch {
    // fall through
  }
  return "0.0.0-unknown";
}

export const VERSION = readVersion();
