// What can be checked of the image without `docker build` (no daemon here): the
// Dockerfile's stages, that every COPY source exists and passes .dockerignore, that the
// runtime paths are the ones the code and `npm run build` use.
import { existsSync, readFileSync } from "node:fs";
import { resolve } from "node:path";
import { describe, expect, it } from "vitest";

const dockerfile = readFileSync("Dockerfile", "utf8");
const lines = dockerfile.split("\n").filter((l) => l.trim() && !l.trim().startsWith("#"));
// FROM lines name their base through ARGs with the release's defaults: resolve them.
const args = Object.fromEntries([...dockerfile.matchAll(/^ARG (\w+)=(\S+)$/gm)].map((m) => [m[1]!, m[2]!]));
const stages = dockerfile.split(/^FROM /m).slice(1).map((s) => ({ from: s.split("\n")[0]!.replace(/\$\{(\w+)\}/g, (_, k: string) => args[k] ?? `\${${k}}`), body: s }));
const ignore = readFileSync(".dockerignore", "utf8").split("\n").map((l) => l.trim()).filter((l) => l && !l.startsWith("#"));

/** The allow-list .dockerignore this repo uses: `*`, then `!path` or `!dir/` exceptions. */
function inContext(path: string): boolean {
  expect(ignore[0]).toBe("*");
  return ignore.slice(1).some((p) => {
    const allowed = p.slice(1).replace(/\/$/, "");
    return p.startsWith("!") && (path === allowed || path.startsWith(`${allowed}/`));
  });
}

describe("Dockerfile", () => {
  it("builds on a Node LTS and runs on the same major, distroless, as a non-root user", () => {
    expect(stages).toHaveLength(2);
    const build = /^node:(\d+)-\S+ AS build$/.exec(stages[0]!.from);
    const runtime = /^gcr\.io\/distroless\/nodejs(\d+)-debian12:nonroot$/.exec(stages[1]!.from);
    expect(build && runtime).toBeTruthy();
    expect(Number(build![1]) % 2).toBe(0); // even majors are the LTS lines
    expect(Number(build![1])).toBeGreaterThanOrEqual(20);
    expect(runtime![1]).toBe(build![1]);
    expect(stages[1]!.body).toMatch(/^USER 65532:65532$/m);
  });

  it("installs, builds, prunes to production dependencies and builds the static no-op", () => {
    const b = stages[0]!.body;
    expect(b).toMatch(/npm ci --ignore-scripts/);
    expect(b).toMatch(/npm run build/);
    expect(b).toMatch(/npm ci --omit=dev --ignore-scripts/);
    expect(b.indexOf("npm run build")).toBeLessThan(b.indexOf("--omit=dev"));
    expect(b).toMatch(/gcc -static .*-o \/noop deploy\/noop\/noop\.c && \/noop/);
  });

  it("every COPY from the build context exists and is not excluded by .dockerignore", () => {
    const sources = lines.filter((l) => /^COPY (?!--from)/.test(l)).flatMap((l) => l.trim().split(/\s+/).slice(1, -1));
    expect(sources.length).toBeGreaterThanOrEqual(4);
    for (const s of sources) {
      expect(existsSync(s), s).toBe(true);
      expect(inContext(s), `${s} is excluded by .dockerignore`).toBe(true);
    }
    expect(inContext("node_modules")).toBe(false);
    expect(inContext(".git")).toBe(false);
  });

  it("the ENTRYPOINT runs the file `npm run build` produces, and the no-op lands where copy-noop looks", () => {
    const entry = JSON.parse(/^ENTRYPOINT (.+)$/m.exec(dockerfile)![1]!) as string[];
    expect(entry).toEqual(["/nodejs/bin/node", "/app/dist/cli/main.js"]);
    expect(existsSync("dist/cli/main.js")).toBe(true); // built by test/global-setup.ts with tsconfig.build.json, as `npm run build` does
    expect(JSON.parse(readFileSync("package.json", "utf8")).scripts.build).toContain("tsconfig.build.json");
    expect(stages[1]!.body).toMatch(/^WORKDIR \/app$/m);
    expect(stages[1]!.body).toMatch(/^COPY --from=build \/src\/dist \.\/dist$/m);
    expect(stages[1]!.body).toMatch(/^COPY --from=build \/src\/package\.json \.\/package\.json$/m); // "type": "module" for dist/
    expect(stages[1]!.body).toMatch(/^COPY --from=build \/noop \.\/bin\/noop$/m);
    // src/prepull/noop.ts resolves ../../bin/noop from dist/prepull/.
    expect(resolve("/app/dist/prepull", "../../bin/noop")).toBe("/app/bin/noop");
    expect(readFileSync("src/prepull/noop.ts", "utf8")).toContain('"../../bin/noop"');
  });
});
