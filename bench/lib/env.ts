// Where things are, building dist/, describing the machine, saving raw results, and
// the entry point every bench script shares when it is run on its own.
import { spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { cleanupTemp, run } from "./proc.js";

export const ROOT = fileURLToPath(new URL("../../", import.meta.url));
export const RESULTS_DIR = join(ROOT, "bench", "results");
export const CLI = join(ROOT, "dist", "cli", "main.js");

/**
 * Node flags for the cache-io processes under test: BENCH_CPU_PROF=<dir> adds
 * --cpu-prof, so a profile of each is written to <dir> when it exits.
 */
export function nodeFlags(): string[] {
  const dir = process.env.BENCH_CPU_PROF;
  return dir ? ["--cpu-prof", "--cpu-prof-dir", dir] : [];
}

let built = false;

/** `npm run build` once per process: the benchmarks drive the compiled CLI, as users run it. */
export async function buildDist(): Promise<void> {
  if (built) return;
  process.stdout.write("building dist/ (npm run build)...\n");
  await run("npm", ["run", "--silent", "build"], 300_000, ROOT);
  built = true;
}

export interface Machine {
  nproc: number;
  cpu: string;
  memoryGiB: number;
  node: string;
  kernel: string;
  curl: string;
  nginx?: string;
}

export async function machine(): Promise<Machine> {
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  const curl = (await run("curl", ["--version"])).stdout.split("\n")[0] ?? "curl";
  return {
    nproc: cpus().length,
    cpu: cpus()[0]?.model ?? "unknown",
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    node: process.version,
    kernel,
    curl: curl.split(" ").slice(0, 2).join(" "),
    ...(existsSync("/usr/sbin/nginx") ? { nginx: spawnSync("/usr/sbin/nginx", ["-v"], { encoding: "utf8" }).stderr.trim().replace(/^nginx version: /, "") } : {}),
  };
}

/** Raw results of one benchmark, as written to bench/results/<name>.json. */
export interface Saved<T> {
  name: string;
  finishedAt: string;
  command: string;
  machine: Machine;
  settings: Record<string, unknown>;
  result: T;
}

export function save<T>(saved: Saved<T>): string {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${saved.name}.json`);
  writeFileSync(file, JSON.stringify(saved, null, 2) + "\n");
  return file;
}

export function load<T>(name: string): Saved<T> | undefined {
  try {
    return JSON.parse(readFileSync(join(RESULTS_DIR, `${name}.json`), "utf8")) as Saved<T>;
  } catch {
    return undefined;
  }
}

/** True when `moduleUrl` is the script node was asked to run (not an import). */
export function isMain(moduleUrl: string): boolean {
  const entry = process.argv[1];
  return entry !== undefined && pathToFileURL(entry).href === moduleUrl;
}

/** Run a benchmark script's main: always clean up, exit non-zero with the error on failure. */
export function main(body: () => Promise<void>): void {
  body()
    .then(cleanupTemp)
    .then(() => process.exit(0))
    .catch(async (err: unknown) => {
      process.stderr.write(`benchmark failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
      await cleanupTemp().catch(() => undefined);
      process.exit(1);
    });
}
