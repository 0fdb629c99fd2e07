// The real `cache-io webhook` process (dist/, built by globalSetup): generates certs into
// an empty directory, prints where it listens and the curl line, answers that exact curl,
// logs reviews as JSON without user data, and on SIGTERM finishes the review in
// flight and exits 0.
import { connect } from "node:net";
import { execFile, spawn, type ChildProcess } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { request } from "node:https";
import { join } from "node:path";
import { promisify } from "node:util";
import { afterAll, describe, expect, it } from "vitest";
import { eventually, exampleReview, postReview } from "../support/tls-client.js";
import { tempDir } from "../support/tls-secret.js";

const ROOT = new URL("../..", import.meta.url).pathname;
const run = promisify(execFile);

interface Cli {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
  exited: Promise<number | null>;
}

function startCli(args: string[]): Cli {
  const child = spawn(process.execPath, ["dist/cli/main.js", "webhook", ...args], {
    cwd: ROOT,
    env: { ...process.env, LOG_LEVEL: "info", CACHE_IO_POLICY: "", CACHE_IO_PORT: "", CACHE_IO_CERTS: "" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  let out = "";
  let err = "";
  child.stdout!.on("data", (d: Buffer) => (out += d));
  child.stderr!.on("data", (d: Buffer) => (err += d));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return { child, stdout: () => out, stderr: () => err, exited };
}

const started: Cli[] = [];
afterAll(() => {
  for (const c of started) if (c.child.exitCode === null && c.child.signalCode === null) c.child.kill("SIGKILL");
});

function connectionRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = connect({ host: "127.0.0.1", port });
    sock.once("connect", () => (sock.destroy(), resolve(false)));
    sock.once("error", (e: NodeJS.ErrnoException) => resolve(e.code === "ECONNREFUSED"));
  });
}

/**
 * SIGTERM while a review is in flight: the server already has its headers (it sent
 * 100 Continue) but not its body. After the shutdown log line it drains: a new review
 * is still answered, with `Connection: close`; after the drain delay new connections
 * are refused, the in-flight review still gets its answer, and the process exits 0.
 */
async function shutdownWithReviewInFlight(cli: Cli, port: number, ca: string, review: unknown): Promise<void> {
  const body = JSON.stringify(review);
  const req = request({
    host: "127.0.0.1", servername: "localhost", port, ca, agent: false, method: "POST", path: "/mutate",
    headers: { "content-type": "application/json", "content-length": Buffer.byteLength(body), expect: "100-continue" },
  });
  const answer = new Promise<{ status: number; text: string }>((resolve, reject) => {
    req.on("response", (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on("error", reject);
  });
  req.flushHeaders();
  await new Promise((resolve) => req.once("continue", resolve));
  cli.child.kill("SIGTERM");
  await eventually(() => (cli.stdout().includes('"msg":"shutting down') ? true : undefined), "the shutdown log line");
  const drained = await postReview({ port, ca }, "/mutate", review);
  expect(drained.status).toBe(200);
  expect(drained.headers.connection).toBe("close");
  await eventually(() => connectionRefused(port).then((r) => r || undefined), "new connections refused after the drain delay");
  req.end(body);
  const r = await answer;
  expect(r.status).toBe(200);
  expect(JSON.parse(r.text).response.allowed).toBe(true);
  expect(await cli.exited).toBe(0);
}

describe("cache-io webhook (the CLI process)", () => {
  it("generates certs, prints the curl line, answers it, and on SIGTERM finishes the review in flight and exits 0", async () => {
    const certs = join(tempDir("cli"), "certs");
    const cli = startCli(["--port", "0", "--certs", certs, "--shutdown-delay-ms", "1500"]);
    started.push(cli);
    const port = await eventually(() => /"msg":"listening on https:\/\/127\.0\.0\.1:(\d+)"/.exec(cli.stdout())?.[1], "the listening log line");
    for (const f of ["ca.crt", "tls.crt", "tls.key"]) expect(existsSync(join(certs, f))).toBe(true);

    // The banner is on stderr, for the person who ran it; stdout is JSON lines only.
    const curlArgs = ["--cacert", join(certs, "ca.crt"), "-H", "Content-Type: application/json", "--data", "@examples/admission-review.json", `https://localhost:${port}/mutate`];
    await eventually(() => (cli.stderr().includes("Send it a review") ? true : undefined), "the curl hint");
    expect(cli.stderr()).toContain(`cache-io webhook listening on https://127.0.0.1:${port} (TLS 1.2+)`);
    expect(cli.stderr()).toContain(`curl --cacert ${join(certs, "ca.crt")} -H 'Content-Type: application/json' --data @examples/admission-review.json https://localhost:${port}/mutate`);

    const { stdout } = await run("curl", ["--silent", "--show-error", "--fail", ...curlArgs], { cwd: ROOT });
    const answer = JSON.parse(stdout);
    const review = await exampleReview();
    expect(answer.response).toMatchObject({ uid: review.request.uid, allowed: true, patchType: "JSONPatch" });

    const viaNode = await postReview({ port: Number(port), ca: readFileSync(join(certs, "ca.crt"), "utf8") }, "/mutate", review);
    expect(viaNode.json.response.patch).toBe(answer.response.patch);

    await shutdownWithReviewInFlight(cli, Number(port), readFileSync(join(certs, "ca.crt"), "utf8"), review);
    const reviewLog = cli.stdout().split("\n").filter((l) => l.startsWith("{") && l.includes('"msg":"review"'));
    expect(reviewLog).toHaveLength(4);
    expect(JSON.parse(reviewLog[0]!)).toMatchObject({ uid: review.request.uid, namespace: "demo", pod: "llm-server", outcome: "patched", reason: "injected", path: "/mutate" });
    expect(reviewLog.join("\n")).not.toContain("models.example.com");
    for (const line of cli.stdout().split("\n").filter((l) => l !== "")) expect(() => JSON.parse(line), line).not.toThrow();
  });

  it("with --no-generate-certs and an empty directory, exits 1 saying what is missing", async () => {
    const certs = tempDir("cli-empty");
    const cli = startCli(["--port", "0", "--certs", certs, "--no-generate-certs"]);
    started.push(cli);
    expect(await cli.exited).toBe(1);
    expect(cli.stderr()).toContain(`no tls.crt and tls.key in ${certs}`);
    expect(existsSync(join(certs, "tls.crt"))).toBe(false);
  });
});
