// `cache-io prepull copy-noop`: put the image's static no-op binary into the shared
// emptyDir, so every pre-pulled image (even distroless or scratch) can run it and exit 0.
import { chmodSync, copyFileSync, existsSync, renameSync, statSync } from "node:fs";
import { dirname, isAbsolute, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

/** The Dockerfile puts the binary at /app/bin/noop, i.e. ../../bin/noop from dist/prepull/. */
export function defaultNoopSource(): string {
  return process.env.CACHE_IO_NOOP_BINARY ?? resolve(dirname(fileURLToPath(import.meta.url)), "../../bin/noop");
}

/** Copy atomically (temp file + rename) and make it executable by any uid. */
export function copyNoopBinary(to: string, from = defaultNoopSource()): void {
  if (!isAbsolute(to)) throw new Error(`--to must be an absolute path, got "${to}"`);
  if (!existsSync(from) || !statSync(from).isFile()) {
    throw new Error(`no-op binary not found at ${from}: this command runs inside the cache-io image (or set CACHE_IO_NOOP_BINARY)`);
  }
  const dir = dirname(to);
  if (!existsSync(dir)) throw new Error(`destination directory ${dir} does not exist: mount the shared emptyDir there`);
  const tmp = join(dir, `.noop.${process.pid}.tmp`);
  copyFileSync(from, tmp);
  chmodSync(tmp, 0o755);
  renameSync(tmp, to);
}
