// versitygw on loopback for the S3 tests: a real S3 gateway that verifies SigV4, over a
// posix directory (bucket = subdirectory, object = file, so tests put objects by writing
// files). Built once by build.sh; stopped by close(), also when a test fails.
import { spawn, execFileSync, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, stopChild } from "../auth-origin.js";

const here = dirname(fileURLToPath(import.meta.url));

export interface S3Server {
  endpoint: string;
  host: string;
  accessKeyId: string;
  secretAccessKey: string;
  region: string;
  /** Writes an object (bucket created as needed). */
  put(bucket: string, key: string, body: Buffer | string): void;
  close(): Promise<void>;
}

/** Path of the versitygw binary, building it (minutes, once per pinned version) if needed. */
export function versitygwBinary(): string {
  return execFileSync(join(here, "build.sh"), { encoding: "utf8", stdio: ["ignore", "pipe", "inherit"] }).trim();
}

async function waitUp(url: string, child: ChildProcess, log: () => string): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (child.exitCode !== null) throw new Error(`versitygw exited with ${child.exitCode}: ${log()}`);
    const ok = await fetch(url).then((r) => r.status > 0, () => false);
    if (ok) return;
    await sleep(50);
  }
  throw new Error(`versitygw did not answer at ${url} within 10 s: ${log()}`);
}

export async function startS3(): Promise<S3Server> {
  const bin = versitygwBinary();
  const root = mkdtempSync(join(tmpdir(), "cache-s3-"));
  const data = join(root, "data");
  mkdirSync(data);
  const port = await freePort();
  const creds = { accessKeyId: "AKIACACHEIOTEST00001", secretAccessKey: "cache-io-test-secret-key-0000000000000000", region: "us-east-1" };
  let out = "";
  const child = spawn(bin, ["--access", creds.accessKeyId, "--secret", creds.secretAccessKey, "--region", creds.region, "--port", `127.0.0.1:${port}`, "--quiet", "posix", "--nometa", data], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout!.on("data", (b: Buffer) => (out = (out + b).slice(-4000)));
  child.stderr!.on("data", (b: Buffer) => (out = (out + b).slice(-4000)));
  const close = async () => {
    await stopChild(child);
    rmSync(root, { recursive: true, force: true });
  };
  try {
    await waitUp(`http://127.0.0.1:${port}/`, child, () => out);
  } catch (err) {
    await close();
    throw err;
  }
  return {
    endpoint: `http://127.0.0.1:${port}`,
    host: `127.0.0.1:${port}`,
    ...creds,
    put(bucket, key, body) {
      const file = join(data, bucket, key);
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(file, body);
    },
    close,
  };
}
