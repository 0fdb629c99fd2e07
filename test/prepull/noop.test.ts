// The static no-op the pre-pull DaemonSet runs in every image: it compiles statically
// from deploy/noop/noop.c (as the Dockerfile does), needs no loader or libc at run
// time, exits 0, and `cache-io prepull copy-noop` puts it in the shared volume.
import { execFile } from "node:child_process";
import { closeSync, mkdtempSync, mkdirSync, openSync, readFileSync, readSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { beforeAll, describe, expect, it } from "vitest";

const run = promisify(execFile);
const PT_INTERP = 3;

/** Program header types of a little-endian ELF64 file; a static binary has no PT_INTERP. */
function programHeaderTypes(file: string): number[] {
  const b = Buffer.alloc(8192);
  const fd = openSync(file, "r");
  readSync(fd, b, 0, b.length, 0);
  closeSync(fd);
  expect(b.subarray(0, 4).toString("latin1")).toBe("\x7fELF");
  expect(b[4]).toBe(2); // ELFCLASS64
  const phoff = Number(b.readBigUInt64LE(0x20));
  const size = b.readUInt16LE(0x36);
  return Array.from({ length: b.readUInt16LE(0x38) }, (_, i) => b.readUInt32LE(phoff + i * size));
}

let noop: string;
beforeAll(async () => {
  noop = join(mkdtempSync(join(tmpdir(), "noop-")), "noop");
  await run("gcc", ["-static", "-Os", "-s", "-o", noop, "deploy/noop/noop.c"]);
});

describe("the static no-op", () => {
  it("is a static executable (no dynamic loader) that exits 0 with an empty environment", async () => {
    expect(programHeaderTypes(noop)).not.toContain(PT_INTERP);
    await expect(run(noop, [], { env: {}, cwd: "/" })).resolves.toMatchObject({ stdout: "", stderr: "" });
  });

  it("the ELF check tells a dynamic binary apart", () => {
    expect(programHeaderTypes(process.execPath)).toContain(PT_INTERP);
  });
});

describe("cache-io prepull copy-noop", () => {
  const cli = (to: string, env: NodeJS.ProcessEnv) => run(process.execPath, ["dist/cli/main.js", "prepull", "copy-noop", "--to", to], { env: { PATH: process.env.PATH, ...env } });

  it("copies it into the shared directory, executable by any uid, and it still runs", async () => {
    const shared = mkdtempSync(join(tmpdir(), "shared-"));
    const to = join(shared, "noop");
    await cli(to, { CACHE_IO_NOOP_BINARY: noop });
    expect(readFileSync(to).equals(readFileSync(noop))).toBe(true);
    expect(statSync(to).mode & 0o777).toBe(0o755);
    await expect(run(to, [], { env: {} })).resolves.toBeDefined();
  });

  it("says what is wrong with the destination or the source", async () => {
    await expect(cli("relative/noop", { CACHE_IO_NOOP_BINARY: noop })).rejects.toMatchObject({ stderr: expect.stringContaining('--to must be an absolute path, got "relative/noop"') });
    const missing = join(mkdtempSync(join(tmpdir(), "shared-")), "nope", "noop");
    await expect(cli(missing, { CACHE_IO_NOOP_BINARY: noop })).rejects.toMatchObject({ stderr: expect.stringContaining("does not exist: mount the shared emptyDir there") });
    const dir = mkdtempSync(join(tmpdir(), "shared-"));
    mkdirSync(join(dir, "x"));
    await expect(cli(join(dir, "noop"), { CACHE_IO_NOOP_BINARY: join(dir, "x", "absent") })).rejects.toMatchObject({ stderr: expect.stringContaining("no-op binary not found at") });
  });
});
