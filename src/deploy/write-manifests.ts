// `node dist/deploy/write-manifests.js [--check] [deploy-dir]`: regenerate deploy/'s
// generated files, or (--check) exit 1 naming each file that differs.
import { mkdirSync, readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { generatedFiles } from "./manifests.js";

export function writeManifests(root: string, check: boolean): string[] {
  const drifted: string[] = [];
  for (const [rel, text] of generatedFiles()) {
    const path = join(root, rel);
    const current = existsSync(path) ? readFileSync(path, "utf8") : null;
    if (current === text) continue;
    drifted.push(rel);
    if (!check) {
      mkdirSync(dirname(path), { recursive: true });
      writeFileSync(path, text);
    }
  }
  return drifted;
}

const args = process.argv.slice(2);
const check = args.includes("--check");
const root = resolve(args.find((a) => !a.startsWith("--")) ?? "deploy");
const changed = writeManifests(root, check);
if (check && changed.length) {
  process.stderr.write(`out of date in ${root}: ${changed.join(", ")}\nrun: npm run manifests\n`);
  process.exitCode = 1;
} else {
  process.stdout.write(changed.length ? `${check ? "differ" : "wrote"}: ${changed.join(", ")}\n` : `${root}: up to date\n`);
}
