// Large test files: a 16 MiB random block repeated (incompressible enough for a
// loopback benchmark, written at disk speed), and dropping files from the page cache
// is deliberately not done: every method reads the same warm pages.
import { randomBytes } from "node:crypto";
import { open } from "node:fs/promises";

const BLOCK = 16 * 2 ** 20;

export async function makeFile(path: string, size: number): Promise<void> {
  const block = randomBytes(BLOCK);
  const fh = await open(path, "w");
  try {
    for (let at = 0; at < size; at += BLOCK) await fh.write(block, 0, Math.min(BLOCK, size - at), at);
  } finally {
    await fh.close();
  }
}
