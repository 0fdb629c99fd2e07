// The peer token file: read once and kept briefly, re-read when the kubelet rotates it
// (a symlink swapped to a new file), and a missing or empty file named in the error.
import { mkdtempSync, renameSync, rmSync, symlinkSync, writeFileSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { fileToken } from "../../src/cache/peers/token.js";

const dir = mkdtempSync(join(tmpdir(), "cache-peer-token-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A projected-volume layout: token -> ..data/token, ..data -> a timestamped directory. */
function project(root: string, generation: number, token: string): void {
  const gen = join(root, `..gen${generation}`);
  mkdirSync(gen, { recursive: true });
  writeFileSync(join(gen, "token"), `${token}\n`);
  symlinkSync(`..gen${generation}`, join(root, "..data_tmp"));
  renameSync(join(root, "..data_tmp"), join(root, "..data"));
  if (generation === 1) symlinkSync("..data/token", join(root, "token"));
}

describe("the peer token file", () => {
  it("is read once, kept for the cache period, and re-read after the kubelet swaps in a new one", async () => {
    const root = join(dir, "projected");
    mkdirSync(root);
    project(root, 1, "first-token");
    let clock = 1_000_000;
    const token = fileToken(join(root, "token"), { cacheMs: 5000, now: () => clock });
    expect(await token()).toBe("first-token");
    project(root, 2, "second-token");
    clock += 1000;
    expect(await token()).toBe("first-token"); // within the cache period: not looked at
    clock += 5000;
    expect(await token()).toBe("second-token");
  });

  it("names the file and how to fix it when it is missing or empty", async () => {
    await expect(fileToken(join(dir, "absent"))()).rejects.toThrow(/peer token file .*absent \(ENOENT\).*--peer-token-file/);
    writeFileSync(join(dir, "empty"), "\n");
    await expect(fileToken(join(dir, "empty"))()).rejects.toThrow(/empty/);
  });

  it("reads a plain file again when its content changed", async () => {
    const path = join(dir, "plain");
    writeFileSync(path, "a");
    let clock = 0;
    const token = fileToken(path, { cacheMs: 10, now: () => clock });
    expect(await token()).toBe("a");
    writeFileSync(path, "bb");
    clock += 20;
    expect(await token()).toBe("bb");
  });
});
