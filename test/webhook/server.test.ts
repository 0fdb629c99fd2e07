// The webhook over real HTTPS, verified against a freshly generated CA: TLS floor,
// good and bad reviews, body limits, the copy-only path, probes and metrics.
import { connect, type ConnectionOptions } from "node:tls";
import jsonpatch from "fast-json-patch";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startWebhook, type RunningWebhook } from "../../src/cli/webhook.js";
import { VERSION } from "../../src/shared/version.js";
import { sampleValue } from "../../src/webhook/metrics.js";
import { createWebhookMetrics } from "../../src/webhook/metrics.js";
import { createWebhookApp } from "../../src/webhook/server.js";
import { startHttpsServer, type HttpsHandle } from "../../src/webhook/tls.js";
import { decodePatch, exampleReview, plainReview, postReview, send, type Target } from "../support/tls-client.js";
import { makeCertDir } from "../support/tls-secret.js";

let webhook: RunningWebhook;
let target: Target;
let certDir: string;

beforeAll(async () => {
  const certs = await makeCertDir();
  certDir = certs.dir;
  webhook = await startWebhook({ host: "127.0.0.1", port: 0, certs: certs.dir, generateCerts: false });
  target = { port: webhook.port, ca: certs.bundle.caCert };
});
afterAll(() => webhook?.close());

function handshake(opts: ConnectionOptions): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: "127.0.0.1", servername: "localhost", port: target.port, ca: target.ca, ...opts }, () => {
      const protocol = socket.getProtocol() ?? "";
      socket.end();
      resolve(protocol);
    });
    socket.on("error", reject);
  });
}

describe("TLS", () => {
  // SECLEVEL=0 lets this client offer TLS 1.1 at all; the refusal must come from the server.
  const legacyClient = { ciphers: "DEFAULT@SECLEVEL=0", minVersion: "TLSv1.1" } as const;

  it("refuses a TLS 1.1 client", async () => {
    await expect(handshake({ ...legacyClient, maxVersion: "TLSv1.1" })).rejects.toThrow(/alert protocol version/);
  });

  it("accepts the same client once it may use TLS 1.2", async () => {
    expect(await handshake({ ...legacyClient, maxVersion: "TLSv1.2" })).toBe("TLSv1.2");
  });

  // The test cert's key is ECDSA: these are the CBC suites OpenSSL would otherwise agree to with it.
  it.each(["ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES256-SHA", "ECDHE-ECDSA-AES128-SHA256", "ECDHE-ECDSA-AES256-SHA384"])(
    "refuses a TLS 1.2 client that offers only %s (CBC)",
    async (cipher) => {
      await expect(handshake({ ...legacyClient, maxVersion: "TLSv1.2", ciphers: `${cipher}@SECLEVEL=0` })).rejects.toThrow(/handshake failure|no shared cipher|alert/);
    },
  );

  it.each(["ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-ECDSA-CHACHA20-POLY1305"])("accepts a TLS 1.2 client offering only %s", async (cipher) => {
    expect(await handshake({ maxVersion: "TLSv1.2", ciphers: cipher })).toBe("TLSv1.2");
  });

  it("speaks TLS 1.3 to a default client", async () => {
    expect(await handshake({})).toBe("TLSv1.3");
  });
});

describe("good reviews", () => {
  it("admits a pod without cache.io/files unchanged, echoing apiVersion, kind and uid", async () => {
    const r = await postReview(target, "/mutate", await plainReview("uid-plain-42"));
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(r.json).toEqual({ apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview", response: { uid: "uid-plain-42", allowed: true } });
  });

  it("patches the annotated example pod: init container first, hostPath volumes, status annotation", async () => {
    const review = await exampleReview();
    const r = await postReview(target, "/mutate", review);
    expect(r.status).toBe(200);
    expect(r.json.response).toMatchObject({ uid: review.request.uid, allowed: true, patchType: "JSONPatch" });
    const ops = decodePatch(r);
    expect(ops.some((op) => op.op === "add" && op.path.startsWith("/spec/initContainers") && JSON.stringify(op.value).includes('"cache-io-fetch"'))).toBe(true);
    const pod = jsonpatch.applyPatch(structuredClone(review.request.object), ops, true, false).newDocument;
    expect(pod.spec.initContainers[0].name).toBe("cache-io-fetch");
    expect(pod.spec.volumes.filter((v: any) => v.hostPath)).toHaveLength(2);
    expect(pod.metadata.annotations["cache.io/status"]).toBe("injected");
  });

  it("/mutate/copy injects an emptyDir and no hostPath", async () => {
    const review = await exampleReview();
    const r = await postReview(target, "/mutate/copy", review);
    expect(r.status).toBe(200);
    const pod = jsonpatch.applyPatch(structuredClone(review.request.object), decodePatch(r), true, false).newDocument;
    expect(pod.spec.volumes.some((v: any) => v.emptyDir)).toBe(true);
    expect(pod.spec.volumes.some((v: any) => v.hostPath)).toBe(false);
  });

  it("accepts an AdmissionReview of a pod near the 1.5 MiB object size limit", async () => {
    const review = await plainReview("uid-big");
    review.request.object.metadata.annotations = { "example.com/blob": "x".repeat(1_500_000) };
    const r = await postReview(target, "/mutate", review);
    expect(r.status).toBe(200);
    expect(r.json.response).toEqual({ uid: "uid-big", allowed: true });
  });
});

describe("bad requests get JSON errors and the server keeps serving", () => {
  const expectJsonError = (r: { status: number; json: any; headers: Record<string, unknown> }, status: number) => {
    expect(r.status).toBe(status);
    expect(r.headers["content-type"]).toMatch(/^application\/json/);
    expect(typeof r.json.error).toBe("string");
  };

  it("answers 400 to a body that is not JSON", async () => {
    expectJsonError(await send(target, { path: "/mutate", body: "{not json" }), 400);
  });

  it("answers 400 to a wrong apiVersion and to a review without request", async () => {
    const wrong = await exampleReview((r) => (r.apiVersion = "admission.k8s.io/v1beta1"));
    const r1 = await postReview(target, "/mutate", wrong);
    expectJsonError(r1, 400);
    expect(r1.json.error).toContain("admission.k8s.io/v1");
    expectJsonError(await postReview(target, "/mutate", { apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview" }), 400);
  });

  it("answers 415 to a body that is not declared as JSON", async () => {
    expectJsonError(await send(target, { path: "/mutate", body: JSON.stringify(await plainReview()), contentType: "text/plain" }), 415);
  });

  it("answers 413 to a body over the limit, then serves the next review", async () => {
    const huge = await plainReview("uid-huge");
    huge.request.object.metadata.annotations = { "example.com/blob": "x".repeat(3.5 * 2 ** 20) };
    expectJsonError(await postReview(target, "/mutate", huge), 413);
    const r = await postReview(target, "/mutate", await plainReview("uid-after"));
    expect(r.json.response).toEqual({ uid: "uid-after", allowed: true });
  });

  it("answers 413 to a chunked body that grows past the limit (no Content-Length to refuse it early)", async () => {
    const huge = await plainReview("uid-huge-chunked");
    huge.request.object.metadata.annotations = { "example.com/blob": "x".repeat(3.5 * 2 ** 20) };
    const r = await send(target, { path: "/mutate", body: JSON.stringify(huge), chunked: true });
    expectJsonError(r, 413);
    const ok = await send(target, { path: "/mutate", body: JSON.stringify(await plainReview("uid-after-chunked")), chunked: true });
    expect(ok.json).toMatchObject({ response: { uid: "uid-after-chunked", allowed: true } });
  });

  it("answers 415 to a compressed body (the API server never sends one)", async () => {
    const r = await send(target, { path: "/mutate", body: JSON.stringify(await plainReview()), headers: { "content-encoding": "gzip" } });
    expectJsonError(r, 415);
  });

  it("answers 404 JSON to unknown paths and 405 to GET /mutate", async () => {
    expectJsonError(await send(target, { path: "/nope" }), 404);
    expectJsonError(await send(target, { path: "/mutate" }), 405);
  });
});

describe("probes and metrics", () => {
  it("/healthz and /readyz answer 200 with a valid policy and cert", async () => {
    expect((await send(target, { path: "/healthz" })).status).toBe(200);
    const ready = await send(target, { path: "/readyz" });
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: "ready" });
  });

  it("/metrics exposes every metric name, and the review counters moved", async () => {
    const before = (await sampleValue(webhook.metrics, "cache_io_webhook_reviews_total", { path: "/mutate", outcome: "allowed", reason: "not-annotated" })) ?? 0;
    await postReview(target, "/mutate", await plainReview("uid-metrics"));
    const r = await send(target, { path: "/metrics" });
    expect(r.status).toBe(200);
    expect(r.headers["content-type"]).toMatch(/^text\/plain/);
    for (const name of [
      "cache_io_webhook_reviews_total",
      "cache_io_webhook_review_duration_seconds_bucket",
      "cache_io_policy_reloads_total",
      "cache_io_policy_valid",
      "cache_io_webhook_cert_expiry_timestamp_seconds",
      "cache_io_webhook_cert_reloads_total",
      "process_cpu_seconds_total",
    ]) expect(r.text).toContain(name);
    const line = r.text.split("\n").find((l) => l.startsWith('cache_io_webhook_reviews_total{path="/mutate",outcome="allowed",reason="not-annotated"}'));
    expect(Number(line?.split(" ").pop())).toBe(before + 1);
    expect(r.text).toMatch(/cache_io_webhook_reviews_total\{path="\/mutate",outcome="malformed",reason="malformed"\} [1-9]/);
    expect(r.text).toMatch(/cache_io_webhook_review_duration_seconds_count\{path="\/mutate"\} [1-9]/);
    expect(r.text).toContain("cache_io_policy_valid 1");
    expect(r.text).toContain(`cache_io_build_info{version="${VERSION}",component="webhook"} 1`);
    // Gauges named *_total (prom-client's defaults) fail `promtool check metrics`.
    for (const line of r.text.split("\n").filter((l) => l.startsWith("# TYPE ") && / (gauge|histogram|summary)$/.test(l))) {
      expect(line.split(" ")[2], line).not.toMatch(/_total$/);
    }
    expect(r.text).toContain("nodejs_active_handles ");
    const notAfter = Number(/cache_io_webhook_cert_expiry_timestamp_seconds (\d+)/.exec(r.text)?.[1]);
    expect(notAfter).toBe(Math.floor(webhook.https.cert().notAfter.getTime() / 1000));
  });
});

describe("an unexpected error", () => {
  let broken: HttpsHandle;
  beforeAll(async () => {
    const policy = { current: () => { throw new Error("policy source exploded"); } };
    broken = await startHttpsServer(createWebhookApp({ policy, metrics: createWebhookMetrics() }), { dir: certDir, host: "127.0.0.1", port: 0 });
  });
  afterAll(() => broken?.close());

  it("answers 500 JSON and the server keeps running", async () => {
    const t = { ...target, port: broken.port };
    const r = await postReview(t, "/mutate", await plainReview());
    expect(r.status).toBe(500);
    expect(r.json).toEqual({ error: "internal error; see the webhook's log" });
    expect((await send(t, { path: "/healthz" })).status).toBe(200);
  });
});
