#!/usr/bin/env node
// What a release is, from the same sources as the manifests: the version (package.json),
// the image name and chart repository (dist/deploy/names.js, built from src/deploy), and
// the release notes (the version's CHANGELOG.md section). Refuses a tag that is not
// "v" + package.json's version, or a version without a CHANGELOG section.
// Usage: node .github/scripts/release-info.mjs <tag> <notes-file>   (after `npm run build`)
// Prints key=value lines for $GITHUB_OUTPUT: version, image, image_name, chart_repository.
import { readFileSync, writeFileSync } from "node:fs";

const fail = (message) => {
  process.stderr.write(`release-info: ${message}\n`);
  process.exit(1);
};

const [tag, notesFile] = process.argv.slice(2);
if (!tag || !notesFile) fail("usage: release-info.mjs <tag> <notes-file>");

const { version } = JSON.parse(readFileSync("package.json", "utf8"));
if (tag !== `v${version}`) fail(`tag ${tag} does not match package.json's version ${version}: tag v${version}, or bump "version" in package.json (and run npm run manifests) first`);

const names = await import(new URL("../../dist/deploy/names.js", import.meta.url).href).catch(() => fail("dist/deploy/names.js is missing: run `npm run build` first"));
if (names.IMAGE !== `${names.IMAGE_NAME}:${version}`) fail(`the manifests' image ${names.IMAGE} is not tagged ${version}: rebuild (npm run build)`);

const changelog = readFileSync("CHANGELOG.md", "utf8");
const heading = new RegExp(`^## \\[${version.replaceAll(".", "\\.")}\\] - \\d{4}-\\d{2}-\\d{2}$`, "m");
const start = changelog.search(heading);
if (start < 0) fail(`CHANGELOG.md has no "## [${version}] - YYYY-MM-DD" section: move the Unreleased entries under it`);
const body = changelog.slice(start).split("\n").slice(1);
const end = body.findIndex((l) => /^## \[/.test(l) || /^\[[^\]]+\]: /.test(l));
const notes = body.slice(0, end < 0 ? undefined : end).join("\n").trim();
if (!notes) fail(`the CHANGELOG.md section of ${version} is empty`);
writeFileSync(notesFile, `${notes}\n`);

process.stdout.write(`version=${version}\nimage=${names.IMAGE}\nimage_name=${names.IMAGE_NAME}\nchart_repository=${names.CHART_REPOSITORY}\n`);
