// Certificate rotation on a running webhook: a Secret-style swap under concurrent
// load fails no request; a corrupt, mismatched, expired or not yet valid pair keeps the
// old cert; a cert in force that expires makes the webhook not ready.
import { X509Certificate } from "node:crypto";
import { Agent } from "node:https";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhook, type RunningWebhook } from "../../src/cli/webhook.js";
import type { CertBundle } from "../../src/certs/generate.js";
import { sampleValue } from "../../src/webhook/metrics.js";
import { eventually, exampleReview, postReview, send, type Target } from "../support/tls-client.js";
import { makeCertDir, renew, secretFiles, servingValid, writeSecret } from "../support/tls-secret.js";

let webhook: RunningWebhook;
let target: Target;
let dir: string;
let bundle: CertBundle;

const fingerprint = (pem: string) => new X509Certificate(pem).fingerprint256;
const certLoads = (result: "success" | "failure") => sampleValue(webhook.metrics, "cache_io_webhook_cert_reloads_total", { result });

beforeAll(async () => {
  ({ dir, bundle } = await makeCertDir());
  webhook = await startWebhook({ host: "127.0.0.1", port: 0, certs: dir, generateCerts: false, certPollMs: 100 });
  target = { port: webhook.port, ca: bundle.caCert };
});
afterAll(() => webhook?.close(1000));

/** Wait until the webhook's cert load counter for `result` reaches `n`. */
const loadsReach = (result: "success" | "failure", n: number) =>
  eventually(async () => ((await certLoads(result)) === n ? true : undefined), `${n} cert load(s) with result ${result}`);

describe("certificate rotation", () => {
  it("swaps the serving cert under concurrent load with zero failed requests", async () => {
    const review = await exampleReview();
    const oldFp = fingerprint(bundle.cert);
    const seen = new Set<string>();
    const failures: string[] = [];
    let completed = 0;
    let stop = false;
    // Half the clients open a new connection per request, half keep one alive across the swap.
    const client = async (i: number) => {
      const agent = i % 2 ? new Agent({ keepAlive: true, maxSockets: 1 }) : undefined;
      for (let n = 0; !stop && n < 500; n++) {
        try {
          const r = await postReview({ ...target, agent }, "/mutate", review);
          if (r.status !== 200 || r.json?.response?.uid !== review.request.uid) failures.push(`HTTP ${r.status}: ${r.text.slice(0, 200)}`);
          seen.add(r.fingerprint);
        } catch (err) {
          failures.push(String(err));
        }
        completed++;
      }
      agent?.destroy();
    };
    const clients = Promise.all(Array.from({ length: 6 }, (_, i) => client(i)));

    await eventually(() => (completed >= 60 ? true : undefined), "60 requests before the swap");
    const renewed = await renew(bundle);
    writeSecret(dir, secretFiles(renewed));
    const newFp = fingerprint(renewed.cert);
    await eventually(() => (seen.has(newFp) ? true : undefined), "a connection presenting the new cert");
    const atSwap = completed;
    await eventually(() => (completed >= atSwap + 60 ? true : undefined), "60 requests after the swap");
    stop = true;
    await clients;

    expect(failures).toEqual([]);
    expect(seen).toEqual(new Set([oldFp, newFp]));
    expect((await send(target, { path: "/healthz" })).fingerprint).toBe(newFp);
    expect(webhook.https.cert().fingerprint256).toBe(newFp);
    expect(await certLoads("failure")).toBe(0); // the atomic swap never showed a torn pair
    bundle = renewed;
  });

  it("keeps the old cert when a corrupt or mismatched pair is written, and counts each failure", async () => {
    const current = fingerprint(bundle.cert);
    const successes = (await certLoads("success"))!;
    writeSecret(dir, { ...secretFiles(bundle), "tls.crt": "-----BEGIN CERTIFICATE-----\nnot a cert\n-----END CERTIFICATE-----\n" });
    await loadsReach("failure", 1);
    const other = await renew(bundle);
    writeSecret(dir, { ...secretFiles(bundle), "tls.key": other.key });
    await loadsReach("failure", 2);

    const r = await postReview(target, "/mutate", await exampleReview());
    expect(r.status).toBe(200);
    expect(r.fingerprint).toBe(current);
    expect((await send(target, { path: "/readyz" })).status).toBe(200);
    expect(await certLoads("success")).toBe(successes);

    writeSecret(dir, secretFiles(other)); // a good pair again is picked up
    await loadsReach("success", successes + 1);
    expect((await send(target, { path: "/healthz" })).fingerprint).toBe(fingerprint(other.cert));
    bundle = other;
  });

  it("keeps the valid cert when an expired or a not yet valid one is written, and counts each", async () => {
    const current = fingerprint(bundle.cert);
    const expiry = await sampleValue(webhook.metrics, "cache_io_webhook_cert_expiry_timestamp_seconds");
    const failures = (await certLoads("failure"))!;
    const day = 86_400_000;
    writeSecret(dir, secretFiles(await servingValid(bundle, new Date(Date.now() - 2 * day), new Date(Date.now() - day))));
    await loadsReach("failure", failures + 1);
    writeSecret(dir, secretFiles(await servingValid(bundle, new Date(Date.now() + day), new Date(Date.now() + 2 * day))));
    await loadsReach("failure", failures + 2);

    const r = await postReview(target, "/mutate", await exampleReview());
    expect(r.status).toBe(200);
    expect(r.fingerprint).toBe(current);
    expect(webhook.https.cert().fingerprint256).toBe(current);
    expect((await send(target, { path: "/readyz" })).status).toBe(200);
    expect(await sampleValue(webhook.metrics, "cache_io_webhook_cert_expiry_timestamp_seconds")).toBe(expiry);
  });

  it("turns not ready when the cert in force expires", async () => {
    // The probe rides a connection made while the cert was valid; new ones cannot verify an expired cert.
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const probe = { ...target, agent };
    expect((await send(probe, { path: "/readyz" })).status).toBe(200);
    const successes = (await certLoads("success"))!;
    const expiresAt = Date.now() + 3000;
    writeSecret(dir, secretFiles(await servingValid(bundle, new Date(Date.now() - 60_000), new Date(expiresAt))));
    await loadsReach("success", successes + 1);
    await new Promise((r) => setTimeout(r, Math.max(0, expiresAt - Date.now()) + 1100)); // X.509 times have whole seconds

    const r = await send(probe, { path: "/readyz" });
    expect(r.reusedSocket).toBe(true);
    expect(r.status).toBe(503);
    expect(r.json.reasons).toEqual([expect.stringMatching(/^serving certificate expired at /)]);
    const notAfter = await sampleValue(webhook.metrics, "cache_io_webhook_cert_expiry_timestamp_seconds");
    expect(notAfter).toBeLessThan(Date.now() / 1000);
    await expect(send(target, { path: "/readyz" })).rejects.toThrow(/certificate has expired/);
    agent.destroy();
  }, 20_000);
});
