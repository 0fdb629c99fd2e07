// Build dist/ once before any test file runs: tests that spawn the real CLI
// (`node dist/cli/main.js ...`) then run the same code users run.
import { execFileSync } from "node:child_process";

export default function setup(): void {
  execFileSync(process.execPath, ["node_modules/typescript/bin/tsc", "-p", "tsconfig.build.json"], { stdio: "inherit" });
}
