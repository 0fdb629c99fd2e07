// The version has one source, package.json: the image tag every manifest uses, the
// default overlay's pin, the CHANGELOG's sections and the LICENSE all agree with it.
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { parse } from "yaml";
import { IMAGE, IMAGE_NAME } from "../../src/deploy/names.js";
import { VERSION } from "../../src/shared/version.js";

const pkg = JSON.parse(readFileSync("package.json", "utf8")) as { version: string; license: string };

describe("one version", () => {
  it("the image every manifest uses is tagged with package.json's version", () => {
    expect(VERSION).toBe(pkg.version);
    expect(IMAGE).toBe(`${IMAGE_NAME}:${pkg.version}`);
    for (const f of ["deploy/base/webhook.yaml", "deploy/base/node-cache.yaml"]) expect(readFileSync(f, "utf8")).toContain(`image: ${IMAGE}\n`);
  });

  it("deploy/default pins the same image name and tag", () => {
    const k = parse(readFileSync("deploy/default/kustomization.yaml", "utf8")) as { images: { name: string; newTag: string }[] };
    expect(k.images).toEqual([{ name: IMAGE_NAME, newTag: pkg.version }]);
  });

  it("CHANGELOG.md follows Keep a Changelog and has a dated section for the version, linked at the bottom", () => {
    const log = readFileSync("CHANGELOG.md", "utf8");
    expect(log).toMatch(/keepachangelog\.com/);
    expect(log).toMatch(/^## \[Unreleased\]$/m);
    expect(log).toMatch(new RegExp(`^## \\[${pkg.version.replaceAll(".", "\\.")}\\] - \\d{4}-\\d{2}-\\d{2}$`, "m"));
    expect(log).toMatch(new RegExp(`^\\[${pkg.version.replaceAll(".", "\\.")}\\]: https://github\\.com/cache-io/cache-io/`, "m"));
  });

  it("LICENSE is the Apache License 2.0 text package.json names", () => {
    expect(pkg.license).toBe("Apache-2.0");
    const text = readFileSync("LICENSE", "utf8");
    expect(text).toContain("Apache License\n                           Version 2.0, January 2004");
    expect(text).toContain("END OF TERMS AND CONDITIONS");
  });
});
