// The real `cache-io` binary (dist/, built by globalSetup) keeps the conventions scripts
// rely on: exit 2 for usage errors, 1 for denials and failures, 0 for success; and
// `--log-format json|text` / `--log-level` on every long-running command, applied
// before the command starts logging.
import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = new URL("../..", import.meta.url).pathname;
const work = mkdtempSync(join(tmpdir(), "cli-conventions-"));
const children: ChildProcess[] = [];

afterAll(() => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  rmSync(work, { recursive: true, force: true });
});

/** The environment a user has: no test-runner defaults, no stray cache-io settings. */
function userEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env = { ...process.env, ...extra };
  for (const k of ["VITEST", "VITEST_WORKER_ID", "VITEST_POOL_ID", "LOG_LEVEL", "NODE_ENV"]) delete env[k];
  for (const k of Object.keys(env)) if (k.startsWith("CACHE_IO_") && !(k in extra)) delete env[k];
  return env;
}

interface Proc {
  child: ChildProcess;
  out: () => string;
  err: () => string;
  exited: Promise<number | null>;
}

function start(args: string[], env: Record<string, string> = {}): Proc {
  const child = spawn(process.execPath, ["dist/cli/main.js", ...args], { cwd: ROOT, env: userEnv(env), stdio: ["pipe", "pipe", "pipe"] });
  children.push(child);
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (err += d));
  child.stdin!.end();
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, out: () => out, err: () => err, exited };
}

async function runToEnd(args: string[], env: Record<string, string> = {}): Promise<{ code: number | null; out: string; err: string }> {
  const p = start(args, env);
  const code = await p.exited;
  return { code, out: p.out(), err: p.err() };
}

async function until<T>(what: string, p: Proc, f: () => T | undefined, ms = 20_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = f();
    if (v !== undefined) return v;
    if (p.child.exitCode !== null || Date.now() > end) throw new Error(`no ${what}; stdout:\n${p.out()}\nstderr:\n${p.err()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe("exit codes", () => {
  it.each([
    [["frobnicate"], /unknown command 'frobnicate'/],
    [["webhook", "--frob"], /unknown option '--frob'/],
    [["webhook", "--port", "http"], /option '--port <n>' argument 'http' is invalid\. Use a port number/],
    [["cache", "--port", "70000"], /argument '70000' is invalid/],
    [["webhook", "--max-connections", "0"], /option '--max-connections <n>' argument '0' is invalid\. --max-connections must be a positive integer, got "0"/],
    [["webhook", "--body-timeout-ms", "soon"], /argument 'soon' is invalid/],
    [["cache", "--log-format", "xml"], /argument 'xml' is invalid\. Allowed choices are json, text/],
    [["cache", "--log-level", "loud"], /argument 'loud' is invalid\. Allowed choices are fatal, error/],
    [["inject"], /required option '-f, --filename <file>' not specified/],
    [["certs", "--days", "0"], /option '--days <n>' argument '0' is invalid\. --days "0" must be a whole number of days from 1 to 3650/],
    [["certs", "install", "--namespace", "Bad_NS"], /argument 'Bad_NS' is invalid\. --namespace "Bad_NS" is not a DNS-1123 label/],
    [[], /Usage: cache-io/],
  ])("usage error %j exits 2 and says what is wrong", async (args, message) => {
    const r = await runToEnd(args);
    expect(r.err).toMatch(message);
    expect(r.code).toBe(2);
  });

  it("a bad value from the environment is a usage error too", async () => {
    const r = await runToEnd(["cache", "--root", join(work, "env-root")], { CACHE_IO_PORT: "eighty" });
    expect(r.err).toMatch(/value 'eighty' from env 'CACHE_IO_PORT' is invalid/);
    expect(r.code).toBe(2);
  });

  it("a denial exits 1 with the denial's message, not 2", async () => {
    const pod = join(work, "bad-pod.yaml");
    writeFileSync(pod, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\n  annotations:\n    cache.io/files: ftp://files.example.com/a.bin\nspec:\n  containers: [{name: app, image: busybox}]\n");
    const r = await runToEnd(["inject", "-f", pod]);
    expect(r.err).toContain('scheme "ftp" is not allowed');
    expect(r.code).toBe(1);
  });

  it("a failure (invalid policy file) exits 1", async () => {
    const policy = join(work, "bad-policy.yaml");
    writeFileSync(policy, "cache:\n  port: lots\n");
    const r = await runToEnd(["policy", "check", "-f", policy]);
    expect(r.code).toBe(1);
    expect(r.out + r.err).toContain("cache.port");
  });

  it("--version prints package.json's version and exits 0", async () => {
    const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { version: string };
    const r = await runToEnd(["--version"]);
    expect(r).toMatchObject({ code: 0, out: `${pkg.version}\n` });
  });
});

describe("--log-format and --log-level", () => {
  it.each(["webhook", "cache", "certs install", "prepull reconcile"])("`%s` has both options", async (cmd) => {
    const r = await runToEnd([...cmd.split(" "), "--help"]);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/--log-format <format>.*json, or text/);
    expect(r.out).toMatch(/--log-level <level>/);
  });

  it("cache: JSON lines by default, one readable line per event with --log-format text", async () => {
    const args = ["cache", "--host", "127.0.0.1", "--port", "0"];
    const json = start([...args, "--root", join(work, "root-json")]);
    const listening = await until("JSON 'cache listening' line", json, () => json.out().split("\n").find((l) => l.includes('"msg":"cache listening"')));
    expect(JSON.parse(listening)).toMatchObject({ level: "info", component: "cache", msg: "cache listening", host: "127.0.0.1" });

    const text = start([...args, "--root", join(work, "root-text"), "--log-format", "text"]);
    const line = await until("text 'cache listening' line", text, () => text.out().split("\n").find((l) => l.includes("cache listening")));
    expect(line).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z INFO {2}cache: cache listening host=127\.0\.0\.1 port=\d+ root=\S+ podWatch=false( \w+=\S+)*$/);
    expect(text.out()).not.toContain("{");
    for (const p of [json, text]) p.child.kill("SIGTERM");
    expect(await json.exited).toBe(0);
    expect(await text.exited).toBe(0);
  });

  it("webhook: --log-level warn drops info lines; CACHE_IO_LOG_FORMAT=text works from the environment", async () => {
    const quiet = start(["webhook", "--port", "0", "--certs", join(work, "certs-quiet"), "--log-level", "warn"]);
    const loud = start(["webhook", "--port", "0", "--certs", join(work, "certs-loud")], { CACHE_IO_LOG_FORMAT: "text" });
    // The banner (stderr) comes once the server listens, whatever the log level.
    for (const p of [quiet, loud]) await until("listening banner", p, () => (p.err().includes("Send it a review") ? true : undefined));
    for (const p of [quiet, loud]) p.child.kill("SIGTERM");
    expect(await quiet.exited).toBe(0);
    expect(await loud.exited).toBe(0);
    expect(quiet.out()).toBe("");
    expect(loud.out()).toMatch(/^\S+Z INFO {2}webhook: listening on https:\/\/127\.0\.0\.1:\d+ host=127\.0\.0\.1 port=\d+/m);
    expect(loud.out()).toMatch(/^\S+Z INFO {2}webhook: shutting down: .* signal=SIGTERM$/m);
  });
});
