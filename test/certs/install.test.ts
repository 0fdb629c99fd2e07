// `certs install` against the Kubernetes API stand-in: create-or-reuse, renewal with the
// same CA, CA rotation, two runs at once, 409 Conflict retries, refusals.
import { X509Certificate } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { generateBundle, renewServing, serviceDnsNames, type CertBundle } from "../../src/certs/generate.js";
import { bundleToSecretData, installCerts, type InstallOptions } from "../../src/certs/install.js";
import { webhookConfiguration } from "../../src/deploy/webhook-config.js";
import { KubeApiStandIn } from "../support/kube-api.js";

const opts: InstallOptions = { namespace: "cache-io", service: "cache-io-webhook", secret: "cache-io-webhook-tls", webhookConfig: "cache-io", days: 365, renewBeforeDays: 30 };
const names = serviceDnsNames(opts.service, opts.namespace);
const DAY = 86_400_000;

let api: KubeApiStandIn;
beforeEach(async () => {
  api = await new KubeApiStandIn().start();
  api.seed("mutatingwebhookconfigurations", webhookConfiguration() as never);
});
afterEach(async () => {
  expect(api.violations).toEqual([]);
  await api.close();
});

const decode = (b64: string) => Buffer.from(b64, "base64").toString("utf8");
const secret = () => api.get("secrets", "cache-io", opts.secret) as { type: string; data: Record<string, string>; metadata: { resourceVersion: string } };
const caBundles = () => (api.get("mutatingwebhookconfigurations", undefined, "cache-io") as { webhooks: { clientConfig: { caBundle?: string } }[] }).webhooks.map((w) => w.clientConfig.caBundle);
const writes = (resource: string) => api.requests.filter((r) => r.resource === resource && r.method !== "GET");

function seedSecret(bundle: CertBundle): void {
  api.seed("secrets", { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name: opts.secret, namespace: "cache-io" }, data: bundleToSecretData(bundle) });
}

/** The stored serving cert verifies against every caBundle in the webhook config. */
function expectCaBundleVerifiesStoredCert(): void {
  const cert = new X509Certificate(decode(secret().data["tls.crt"]!));
  for (const b of caBundles()) {
    expect(b).toBeDefined();
    expect(cert.verify(new X509Certificate(decode(b!)).publicKey)).toBe(true);
  }
}

describe("certs install", () => {
  it("first run creates a kubernetes.io/tls Secret and patches every caBundle", async () => {
    const result = await installCerts(api.kubeConfig(), opts);
    expect(result).toMatchObject({ action: "created", patchedWebhooks: 3 });
    const s = secret();
    expect(s.type).toBe("kubernetes.io/tls");
    expect(Object.keys(s.data).sort()).toEqual(["ca.crt", "ca.key", "tls.crt", "tls.key"]);
    expect(caBundles()).toEqual([s.data["ca.crt"], s.data["ca.crt"], s.data["ca.crt"]]);
    const cert = new X509Certificate(decode(s.data["tls.crt"]!));
    for (const n of names) expect(cert.checkHost(n)).toBe(n);
    expectCaBundleVerifiesStoredCert();
    const [create] = writes("secrets");
    expect(create).toMatchObject({ method: "POST", status: 201, query: { fieldManager: "cache-io" } });
    const [patch] = writes("mutatingwebhookconfigurations");
    expect(patch).toMatchObject({ method: "PATCH", contentType: "application/json-patch+json", query: { fieldManager: "cache-io" }, status: 200 });
  });

  it("second run reuses the Secret: no write, same caBundle", async () => {
    await installCerts(api.kubeConfig(), opts);
    const before = { rv: secret().metadata.resourceVersion, bundles: caBundles(), requests: api.requests.length };
    const result = await installCerts(api.kubeConfig(), opts);
    expect(result.action).toBe("reused");
    expect(result.patchedWebhooks).toBe(0);
    expect(secret().metadata.resourceVersion).toBe(before.rv);
    expect(caBundles()).toEqual(before.bundles);
    expect(api.requests.slice(before.requests).map((r) => r.method)).toEqual(["GET", "GET"]);
  });

  it("renews a serving cert inside the renewal window with the same CA, so the caBundle stays", async () => {
    const { caCert, caKey } = await generateBundle({ dnsNames: names, days: 365 });
    seedSecret(await renewServing({ caCert, caKey }, { dnsNames: names, days: 10 }));
    const first = await installCerts(api.kubeConfig(), { ...opts, days: 365 });
    expect(first.action).toBe("renewed");
    const s = secret();
    expect(decode(s.data["ca.crt"]!)).toBe(caCert);
    expect(new Date(new X509Certificate(decode(s.data["tls.crt"]!)).validTo).getTime()).toBeGreaterThan(Date.now() + 300 * DAY);
    const put = writes("secrets")[0]!;
    expect(put.method).toBe("PUT");
    expect((put.body as { metadata: { resourceVersion?: string } }).metadata.resourceVersion).toBeTruthy();
    expectCaBundleVerifiesStoredCert();
    const bundleAfterFirst = caBundles();
    expect((await installCerts(api.kubeConfig(), opts)).action).toBe("reused");
    expect(caBundles()).toEqual(bundleAfterFirst);
  });

  it("renews when the serving cert does not cover the Service's names", async () => {
    const { caCert, caKey } = await generateBundle({ dnsNames: names, days: 365 });
    seedSecret(await renewServing({ caCert, caKey }, { dnsNames: ["other.example"], days: 365 }));
    expect((await installCerts(api.kubeConfig(), opts)).action).toBe("renewed");
    expectCaBundleVerifiesStoredCert();
  });

  it("rotates a CA inside the renewal window and keeps trusting the old one until the next run", async () => {
    const old = await generateBundle({ dnsNames: names, days: 10 }); // CA lives 20 days
    seedSecret(old);
    const result = await installCerts(api.kubeConfig(), opts);
    expect(result.action).toBe("regenerated");
    const s = secret();
    expect(decode(s.data["ca.crt"]!)).not.toBe(old.caCert);
    const trusted = decode(caBundles()[0]!);
    expect(trusted).toContain(decode(s.data["ca.crt"]!).trim());
    expect(trusted).toContain(old.caCert.trim());
    expect((await installCerts(api.kubeConfig(), opts)).action).toBe("reused");
    expect(caBundles()[0]).toBe(s.data["ca.crt"]);
  });

  it("two runs at once end with one Secret and a caBundle that verifies it", async () => {
    api.holdUntil((r) => r.method === "GET" && r.resource === "secrets", 2);
    const [a, b] = await Promise.all([installCerts(api.kubeConfig(), opts), installCerts(api.kubeConfig(), opts)]);
    const creates = writes("secrets").filter((r) => r.method === "POST");
    expect(creates.map((r) => r.status).sort()).toEqual([201, 409]);
    expect([a.action, b.action].sort()).toEqual(["created", "reused"]);
    expect(a.caBundle).toBe(b.caBundle);
    expect(a.caBundle).toBe(secret().data["ca.crt"]);
    expect([...api.objects.keys()].filter((k) => k.startsWith("secrets/"))).toHaveLength(1);
    expectCaBundleVerifiesStoredCert();
  });

  it("retries a Secret update that gets 409 Conflict", async () => {
    const { caCert, caKey } = await generateBundle({ dnsNames: names, days: 365 });
    seedSecret(await renewServing({ caCert, caKey }, { dnsNames: names, days: 5 }));
    api.failNext((r) => r.method === "PUT" && r.resource === "secrets", 409, "Conflict");
    expect((await installCerts(api.kubeConfig(), opts)).action).toBe("renewed");
    expect(writes("secrets").map((r) => r.status)).toEqual([409, 200]);
    expectCaBundleVerifiesStoredCert();
  });

  it("retries a caBundle patch that gets 409 Conflict", async () => {
    api.failNext((r) => r.method === "PATCH", 409, "Conflict");
    await installCerts(api.kubeConfig(), opts);
    expect(writes("mutatingwebhookconfigurations").map((r) => r.status)).toEqual([409, 200]);
  });

  it("re-reads and retries when another writer changes the config between its read and its patch", async () => {
    api.beforeNext((r) => r.method === "PATCH", () => {
      const config = api.get("mutatingwebhookconfigurations", undefined, "cache-io")!;
      api.seed("mutatingwebhookconfigurations", { ...config, metadata: { ...config.metadata, labels: { changed: "yes" } } });
    });
    const result = await installCerts(api.kubeConfig(), opts);
    expect(result.patchedWebhooks).toBe(3);
    expect(writes("mutatingwebhookconfigurations").map((r) => r.status)).toEqual([409, 200]);
    expect(api.get("mutatingwebhookconfigurations", undefined, "cache-io")!.metadata!.labels).toEqual({ changed: "yes" });
    expectCaBundleVerifiesStoredCert();
  });

  it("refuses a Secret managed by cert-manager or of another type, saying what to do", async () => {
    api.seed("secrets", { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name: opts.secret, namespace: "cache-io", annotations: { "cert-manager.io/certificate-name": "x" } }, data: {} });
    await expect(installCerts(api.kubeConfig(), opts)).rejects.toThrow(/managed by cert-manager; use deploy\/overlays\/cert-manager/);
    api.seed("secrets", { apiVersion: "v1", kind: "Secret", type: "Opaque", metadata: { name: opts.secret, namespace: "cache-io" }, data: {} });
    await expect(installCerts(api.kubeConfig(), opts)).rejects.toThrow(/has type Opaque, not kubernetes.io\/tls; delete it or pass another --secret/);
    expect(writes("secrets")).toEqual([]);
  });

  it("regenerates a Secret whose data is unusable", async () => {
    api.seed("secrets", { apiVersion: "v1", kind: "Secret", type: "kubernetes.io/tls", metadata: { name: opts.secret, namespace: "cache-io" }, data: { "tls.crt": "bm90IGEgY2VydA==", "tls.key": "eA==" } });
    expect((await installCerts(api.kubeConfig(), opts)).action).toBe("regenerated");
    expectCaBundleVerifiesStoredCert();
  });

  it("says to apply deploy/ first when the webhook configuration is missing", async () => {
    api.objects.clear();
    await expect(installCerts(api.kubeConfig(), opts)).rejects.toThrow(/MutatingWebhookConfiguration cache-io not found: apply deploy\/ first/);
  });
});
