// Policy hot reload through a running webhook: edits to a ConfigMap-style mounted file
// change behaviour, a bad edit keeps the last good policy, and a policy that is bad at
// start leaves the webhook up but not ready until it is fixed.
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhook, type RunningWebhook } from "../../src/cli/webhook.js";
import { sampleValue } from "../../src/webhook/metrics.js";
import { eventually, exampleReview, postReview, send, type Reply, type Target } from "../support/tls-client.js";
import { makeCertDir, tempDir, writeSecret } from "../support/tls-secret.js";

let certs: Awaited<ReturnType<typeof makeCertDir>>;
beforeAll(async () => {
  certs = await makeCertDir();
});

/** Start a webhook on a policy mounted like a ConfigMap (symlink-swapped on every edit). */
async function webhookWithPolicy(text: string) {
  const dir = tempDir("policy");
  writeSecret(dir, { "policy.yaml": text });
  const webhook = await startWebhook({
    host: "127.0.0.1", port: 0, certs: certs.dir, generateCerts: false, policy: join(dir, "policy.yaml"), policyPollMs: 100,
  });
  const target: Target = { port: webhook.port, ca: certs.bundle.caCert };
  const loads = (result: "success" | "failure") => sampleValue(webhook.metrics, "cache_io_policy_reloads_total", { result });
  /** Write a new version and wait until the webhook has judged it. */
  const edit = async (next: string, result: "success" | "failure") => {
    const before = (await loads(result))!;
    writeSecret(dir, { "policy.yaml": next });
    await eventually(async () => ((await loads(result))! > before ? true : undefined), `a policy load with result ${result}`);
  };
  return { webhook, target, edit, loads };
}

const verdict = (r: Reply) => ({
  allowed: r.json.response.allowed,
  patched: r.json.response.patchType === "JSONPatch",
  warned: (r.json.response.warnings ?? []).length > 0,
});

describe("policy hot reload", () => {
  let w: Awaited<ReturnType<typeof webhookWithPolicy>>;
  beforeAll(async () => {
    w = await webhookWithPolicy("injection: {maxFiles: 1}\n");
  });
  afterAll(() => w?.webhook.close(1000));
  const sendExample = async () => postReview(w.target, "/mutate", await exampleReview());

  it("applies each edit to the next review", async () => {
    const denied = await sendExample();
    expect(verdict(denied)).toEqual({ allowed: false, patched: false, warned: false });
    expect(denied.json.response.status.message).toMatch(/maxFiles|at most 1|too many/i);

    await w.edit("injection: {maxFiles: 1, onInvalid: warn}\n", "success");
    expect(verdict(await sendExample())).toEqual({ allowed: true, patched: false, warned: true });

    await w.edit("injection: {maxFiles: 4}\n", "success");
    expect(verdict(await sendExample())).toEqual({ allowed: true, patched: true, warned: false });
    expect(await sampleValue(w.webhook.metrics, "cache_io_webhook_reviews_total", { path: "/mutate", outcome: "denied", reason: "too-many-files" })).toBe(1);
  });

  it("keeps the last good policy on a bad edit, reports it, and stays ready", async () => {
    // A last good policy whose verdict differs from the default policy's (which patches the example).
    await w.edit("injection: {maxFiles: 1, onInvalid: warn}\n", "success");
    expect(verdict(await sendExample())).toEqual({ allowed: true, patched: false, warned: true });
    const failures = (await w.loads("failure"))!;
    await w.edit("injection: {maxFiles: 0, mode: hardlink}\n", "failure");
    expect(await w.loads("failure")).toBe(failures + 1);
    expect(await sampleValue(w.webhook.metrics, "cache_io_policy_valid")).toBe(0);
    expect(verdict(await sendExample())).toEqual({ allowed: true, patched: false, warned: true });
    expect((await send(w.target, { path: "/readyz" })).status).toBe(200);

    await w.edit("injection: {maxFiles: 1}\n", "success");
    expect(await sampleValue(w.webhook.metrics, "cache_io_policy_valid")).toBe(1);
    expect(verdict(await sendExample()).allowed).toBe(false);
  });
});

describe("a policy that is invalid at start", () => {
  let w: Awaited<ReturnType<typeof webhookWithPolicy>>;
  beforeAll(async () => {
    w = await webhookWithPolicy("injection: {maxFiles: many}\n");
  });
  afterAll(() => w?.webhook.close(1000));

  it("serves but is not ready, refuses reviews with 503, and names the bad field", async () => {
    expect(w.webhook.policyStartErrors.join("\n")).toContain("injection.maxFiles");
    expect(await sampleValue(w.webhook.metrics, "cache_io_policy_valid")).toBe(0);
    const ready = await send(w.target, { path: "/readyz" });
    expect(ready.status).toBe(503);
    expect(ready.json.reasons).toEqual(["no valid policy loaded"]);
    const r = await postReview(w.target, "/mutate", await exampleReview());
    expect(r.status).toBe(503);
    expect(r.json.error).toMatch(/no valid policy/);
    expect((await send(w.target, { path: "/healthz" })).status).toBe(200);
  });

  it("becomes ready once the file is fixed", async () => {
    await w.edit("injection: {maxFiles: 4}\n", "success");
    expect((await send(w.target, { path: "/readyz" })).status).toBe(200);
    expect(verdict(await postReview(w.target, "/mutate", await exampleReview())).patched).toBe(true);
  });
});
