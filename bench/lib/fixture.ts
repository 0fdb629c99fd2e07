// The shared setup of the node benchmarks: a large file on disk, served by the
// throttled origin in its own process; torn down (file deleted) afterwards.
import { join } from "node:path";
import { makeFile } from "./files.js";
import { startBenchOrigin, type BenchOrigin } from "./origin.js";
import { removeTemp, tempDir } from "./proc.js";
import { fmtBytes } from "./stats.js";

export interface Served {
  origin: BenchOrigin;
  /** The file on disk the origin serves. */
  file: string;
  dir: string;
  size: number;
  sha256: string;
  /** Origin URL of the file (or of another file put at `path`). */
  url(path?: string): string;
}

export async function withServedFile<T>(label: string, size: number, rate: number, body: (s: Served) => Promise<T>): Promise<T> {
  const dir = await tempDir(label);
  const origin = await startBenchOrigin(rate);
  try {
    const file = join(dir, "model.bin");
    process.stdout.write(`${label}: writing a ${fmtBytes(size)} file, origin throttled to ${(rate / 1e6).toFixed(0)} MB/s\n`);
    await makeFile(file, size);
    const first = await origin.putFile("/models/model.bin", file);
    const served: Served = {
      origin,
      file,
      dir,
      size: first.size,
      sha256: first.sha256,
      url: (path = "/models/model.bin") => origin.url(path),
    };
    return await body(served);
  } finally {
    await origin.stop();
    await removeTemp(dir);
  }
}
