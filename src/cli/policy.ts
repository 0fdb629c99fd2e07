// `cache-io policy check|default`.
import { readFileSync } from "node:fs";
import { DEFAULT_POLICY_YAML } from "../policy/default.js";
import { parsePolicy } from "../policy/load.js";

export function check(opts: { filename: string }): void {
  const text = readFileSync(opts.filename === "-" ? 0 : opts.filename, "utf8");
  const r = parsePolicy(text);
  if (r.ok) {
    process.stdout.write(`${opts.filename}: valid\n`);
    return;
  }
  process.stderr.write(`${opts.filename}: ${r.errors.length} problem(s):\n${r.errors.map((e) => `  - ${e}`).join("\n")}\n`);
  process.exitCode = 1;
}

export function printDefault(): void {
  process.stdout.write(DEFAULT_POLICY_YAML);
}
