// Azurite (Microsoft's Azure Storage emulator, from npm) as a blob service on loopback
// for the Azure tests: verifies shared-key and SAS signatures like Blob Storage does.
// In-memory storage; stopped by close(), also when a test fails.
import { spawn } from "node:child_process";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { setTimeout as sleep } from "node:timers/promises";
import { BlobServiceClient, StorageSharedKeyCredential } from "@azure/storage-blob";
import { freePort, stopChild } from "./auth-origin.js";

const bin = join(dirname(fileURLToPath(import.meta.url)), "../../node_modules/azurite/dist/src/blob/main.js");

/** Azurite's well-known development account (public, documented by Microsoft). */
export const DEV_ACCOUNT = "devstoreaccount1";
export const DEV_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

export interface Azurite {
  host: string;
  /** http://127.0.0.1:port/devstoreaccount1 */
  accountUrl: string;
  put(container: string, blob: string, body: string | Buffer): Promise<void>;
  close(): Promise<void>;
}

export async function startAzurite(): Promise<Azurite> {
  const port = await freePort();
  const child = spawn(process.execPath, [bin, "--blobHost", "127.0.0.1", "--blobPort", String(port), "--inMemoryPersistence", "--silent", "--disableTelemetry", "--skipApiVersionCheck"], {
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  child.stdout!.on("data", (b: Buffer) => (out = (out + b).slice(-4000)));
  child.stderr!.on("data", (b: Buffer) => (out = (out + b).slice(-4000)));
  const close = () => stopChild(child);
  const accountUrl = `http://127.0.0.1:${port}/${DEV_ACCOUNT}`;
  try {
    for (let i = 0; ; i++) {
      if (child.exitCode !== null) throw new Error(`azurite exited with ${child.exitCode}: ${out}`);
      if (await fetch(`http://127.0.0.1:${port}/`).then(() => true, () => false)) break;
      if (i > 400) throw new Error(`azurite did not listen on 127.0.0.1:${port} within 20 s: ${out}`);
      await sleep(50);
    }
  } catch (err) {
    await close();
    throw err;
  }
  const service = new BlobServiceClient(accountUrl, new StorageSharedKeyCredential(DEV_ACCOUNT, DEV_KEY));
  return {
    host: `127.0.0.1:${port}`,
    accountUrl,
    async put(container, blob, body) {
      const c = service.getContainerClient(container);
      await c.createIfNotExists();
      const data = Buffer.from(body);
      await c.getBlockBlobClient(blob).upload(data, data.length);
    },
    close,
  };
}
