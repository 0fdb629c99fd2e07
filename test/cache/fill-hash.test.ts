// The sha256 of a fill is computed by worker threads reading the temp file back
// (src/cache/fills/hash.ts): the digest is the file's, however the written prefix grew,
// a file shorter than its written bytes fails, a closed hasher rejects, and the main
// thread's event loop stays free while a large file is hashed.
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { open } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { afterAll, describe, expect, it } from "vitest";
import { FillBody } from "../../src/cache/fills/body.js";
import { HashPool } from "../../src/cache/fills/hash.js";
import { pseudoRandom } from "../support/origin.js";

const MiB = 2 ** 20;
const dir = mkdtempSync(join(tmpdir(), "cache-fill-hash-"));
const pool = new HashPool(2);

afterAll(() => rmSync(dir, { recursive: true, force: true }));

const sha = (b: Buffer) => createHash("sha256").update(b).digest("hex");

describe("fill hashing in worker threads", () => {
  it("digests the file's bytes however the written prefix grew (steps, jumps, several files at once)", async () => {
    const files = [pseudoRandom(9 * MiB + 123, 1), pseudoRandom(5 * MiB, 2), pseudoRandom(1, 3), Buffer.alloc(0)];
    const digests = await Promise.all(
      files.map(async (content, i) => {
        const path = join(dir, `steps-${i}`);
        const fh = await open(path, "w+");
        try {
          const h = pool.open(path);
          // Written in uneven steps; the hasher is told only sometimes (as parts land out of order).
          for (let at = 0, step = 0; at < content.length; step++) {
            const n = Math.min(content.length - at, (step % 3) * MiB + 777);
            await fh.write(content, at, n, at);
            at += n;
            if (step % 2 === 0) h.extend(at);
          }
          return await h.digest(content.length);
        } finally {
          await fh.close();
        }
      }),
    );
    expect(digests).toEqual(files.map(sha));
  });

  it("fails the digest when the file is shorter than the bytes said to be written", async () => {
    const path = join(dir, "short");
    writeFileSync(path, pseudoRandom(2 * MiB, 4));
    const h = pool.open(path);
    h.extend(3 * MiB);
    await expect(h.digest(3 * MiB)).rejects.toThrow(/temp file .*short is shorter than its 3145728 written bytes/);
  });

  it("rejects a pending digest when the hasher is closed (a failed fill), with the fill's error", async () => {
    const path = join(dir, "closed");
    writeFileSync(path, pseudoRandom(MiB, 5));
    const h = pool.open(path);
    const pending = h.digest(MiB);
    h.close(new Error("the origin closed the connection"));
    await expect(pending).rejects.toThrow("the origin closed the connection");
    await expect(h.digest(MiB)).rejects.toThrow("the origin closed the connection");
  });

  it("keeps the main thread free: hashing a 256 MiB fill body leaves the event loop mostly idle", async () => {
    const size = 256 * MiB;
    const path = join(dir, "big");
    const block = pseudoRandom(16 * MiB, 6);
    const expected = createHash("sha256");
    const fh = await open(path, "w+");
    for (let at = 0; at < size; at += block.length) {
      await fh.write(block, 0, block.length, at);
      expected.update(block);
    }
    const body = new FillBody(fh, path, size, [{ index: 0, start: 0, end: size }], pool);
    try {
      const before = performance.eventLoopUtilization();
      body.wrote(body.parts[0]!, size);
      body.complete(body.parts[0]!);
      const digest = await body.digest();
      const elu = performance.eventLoopUtilization(before);
      expect(digest).toBe(expected.digest("hex"));
      // Hashing 256 MiB on the main thread keeps it busy most of that time (utilization near 1).
      expect(elu.utilization).toBeLessThan(0.3);
    } finally {
      await body.release();
    }
  });
});
