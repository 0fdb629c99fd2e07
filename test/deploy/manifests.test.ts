// Committed manifests cannot drift from the code: every generated file under deploy/
// is exactly what src/deploy produces now, and the regeneration script says which differ.
import { execFile } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { describe, expect, it } from "vitest";
import { GENERATED_HEADER, generatedFiles } from "../../src/deploy/manifests.js";
import { DEFAULT_POLICY_YAML } from "../../src/policy/default.js";

const run = promisify(execFile);

describe("generated manifests", () => {
  it.each([...generatedFiles().keys()])("deploy/%s is what the code generates (run `npm run manifests` after changing src/deploy)", (rel) => {
    expect(readFileSync(join("deploy", rel), "utf8")).toBe(generatedFiles().get(rel));
  });

  it("the policy file the ConfigMap is built from is the embedded default, without a header", () => {
    expect(generatedFiles().get("base/policy.yaml")).toBe(DEFAULT_POLICY_YAML);
    for (const [rel, text] of generatedFiles()) if (rel !== "base/policy.yaml") expect(text.startsWith(GENERATED_HEADER), rel).toBe(true);
  });

  it("write-manifests --check passes on deploy/, names a drifted file, and rewriting fixes it", async () => {
    const dir = mkdtempSync(join(tmpdir(), "deploy-"));
    cpSync("deploy", dir, { recursive: true });
    const script = "dist/deploy/write-manifests.js";
    expect((await run(process.execPath, [script, "--check", dir])).stdout).toContain("up to date");
    writeFileSync(join(dir, "base/webhook-configuration.yaml"), "# edited by hand\n");
    await expect(run(process.execPath, [script, "--check", dir])).rejects.toMatchObject({ code: 1, stderr: expect.stringContaining("base/webhook-configuration.yaml") });
    expect((await run(process.execPath, [script, dir])).stdout).toContain("wrote: base/webhook-configuration.yaml");
    expect((await run(process.execPath, [script, "--check", dir])).stdout).toContain("up to date");
  });
});
