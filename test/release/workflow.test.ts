// The release workflow cannot run here (it pushes to GHCR): actionlint checks it, the
// script that decides what a release is runs for real, and the workflow is checked to
// take image, chart repository and version from that script, not from literals.
import { execFile } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { parse } from "yaml";
import { CHART_REPOSITORY, IMAGE, IMAGE_NAME } from "../../src/deploy/names.js";
import { VERSION } from "../../src/shared/version.js";
import { findTool, itWith, toolPath } from "../deploy/tools.js";

const run = promisify(execFile);
const actionlint = findTool("actionlint", "Build it with `bash test/cluster/tools/build.sh actionlint` (Go module proxy).");
const WORKFLOW = ".github/workflows/release.yml";
const text = readFileSync(WORKFLOW, "utf8");
// eslint-disable-next-line @typescript-eslint/no-explicit-any
const workflow = parse(text) as any;
const work = mkdtempSync(join(tmpdir(), "release-"));
afterAll(() => rmSync(work, { recursive: true, force: true }));

const info = (tag: string) =>
  run(process.execPath, [".github/scripts/release-info.mjs", tag, join(work, `${tag}.md`)]).then(
    (r) => ({ code: 0, out: r.stdout, err: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, out: e.stdout, err: e.stderr }),
  );

describe("release workflow", () => {
  itWith(actionlint)("passes actionlint", async () => {
    const r = await run(toolPath(actionlint), ["-no-color", WORKFLOW]).then(
      () => "",
      (e: { stdout: string }) => e.stdout,
    );
    expect(r).toBe("");
  });

  itWith(actionlint)("actionlint can fail (a broken expression is reported)", async () => {
    const broken = join(work, "broken.yml");
    writeFileSync(broken, text.replace("${{ needs.info.outputs.image }}", "${{ needs.nope.outputs.image }}"));
    await expect(run(toolPath(actionlint), ["-no-color", broken])).rejects.toMatchObject({ stdout: expect.stringContaining("nope") });
  });

  it("runs on version tags only and builds amd64 and arm64 with SBOM and provenance", () => {
    expect(workflow.on).toEqual({ push: { tags: ["v[0-9]+.[0-9]+.[0-9]+*"] } });
    const build = workflow.jobs.image.steps.find((s: { uses?: string }) => s.uses?.startsWith("docker/build-push-action@"));
    expect(build.with).toMatchObject({ platforms: "linux/amd64,linux/arm64", push: true, sbom: true, provenance: "mode=max", tags: "${{ needs.info.outputs.image }}" });
    expect(workflow.jobs.image.permissions).toMatchObject({ packages: "write", "id-token": "write" });
  });

  it("takes image, chart repository and version from release-info (src/deploy, package.json), never from literals", () => {
    const jobs = Object.values(workflow.jobs).map((j) => JSON.stringify(j)).join("\n");
    for (const literal of [IMAGE_NAME, CHART_REPOSITORY, VERSION]) expect(jobs).not.toContain(literal);
    expect(text).toContain('node .github/scripts/release-info.mjs "$GITHUB_REF_NAME" release-notes.md >> "$GITHUB_OUTPUT"');
    expect(text).toContain('helm push "chart-dist/cache-io-${VERSION}.tgz" "$REPOSITORY"');
    expect(text).toContain("node dist/deploy/write-manifests.js --check");
  });

  it("release-info: for the tag of package.json's version, prints the manifests' image and writes that CHANGELOG section as notes", async () => {
    const r = await info(`v${VERSION}`);
    expect(r).toMatchObject({ code: 0, out: `version=${VERSION}\nimage=${IMAGE}\nimage_name=${IMAGE_NAME}\nchart_repository=${CHART_REPOSITORY}\n` });
    const notes = readFileSync(join(work, `v${VERSION}.md`), "utf8");
    const changelog = readFileSync("CHANGELOG.md", "utf8");
    const section = changelog.slice(changelog.indexOf(`## [${VERSION}]`));
    expect(notes.trim().length).toBeGreaterThan(100);
    expect(section).toContain(notes.trim());
    expect(notes).not.toMatch(/^## /m);
    expect(notes).not.toContain("[Unreleased]");
  });

  it.each(["v9.9.9", VERSION, `v${VERSION}-rc.1`])("release-info refuses tag %s, which is not v + package.json's version", async (tag) => {
    const r = await info(tag);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`does not match package.json's version ${VERSION}`);
  });
});
