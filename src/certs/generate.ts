// A CA and a serving certificate signed by it, made with `selfsigned`. Files use the
// names of a kubernetes.io/tls Secret (tls.crt, tls.key) plus ca.crt, so the same
// directory layout works locally and when the Secret is mounted in a pod.
import { X509Certificate } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "selfsigned";

export interface CertBundle {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CertRequest {
  /** DNS names in the serving cert's subjectAltName; the first is its common name. */
  dnsNames: string[];
  ips?: string[];
  days?: number;
}

export const CERT_FILES = { caCert: "ca.crt", caKey: "ca.key", cert: "tls.crt", key: "tls.key" } as const;

/** The names a webhook Service is reached by from kube-apiserver. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [`${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`, `${service}.${namespace}`, service];
}

const KEY = { keyType: "ec" as const, curve: "P-256" as const, algorithm: "sha256" };

export async function generateBundle(req: CertRequest): Promise<CertBundle> {
  const days = req.days ?? 365;
  const notBeforeDate = new Date(Date.now() - 5 * 60_000);
  const ca = await generate([{ name: "commonName", value: "cache-io-webhook-ca" }], {
    ...KEY,
    notBeforeDate,
    // The CA outlives the serving cert so a renewal does not need a new caBundle.
    notAfterDate: new Date(notBeforeDate.getTime() + days * 2 * 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return renewServing({ caCert: ca.cert, caKey: ca.private }, req);
}

/** Sign a new serving cert with an existing CA (renewal keeps the caBundle valid). */
export async function renewServing(ca: Pick<CertBundle, "caCert" | "caKey">, req: CertRequest): Promise<CertBundle> {
  const days = req.days ?? 365;
  const notBeforeDate = new Date(Date.now() - 5 * 60_000);
  const serving = await generate([{ name: "commonName", value: req.dnsNames[0] ?? "localhost" }], {
    ...KEY,
    notBeforeDate,
    notAfterDate: new Date(notBeforeDate.getTime() + days * 86_400_000),
    ca: { key: ca.caKey, cert: ca.caCert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [...req.dnsNames.map((value) => ({ type: 2 as const, value })), ...(req.ips ?? []).map((ip) => ({ type: 7 as const, ip }))] },
    ],
  });
  return { ...ca, cert: serving.cert, key: serving.private };
}

export function caBundleBase64(bundle: Pick<CertBundle, "caCert">): string {
  return Buffer.from(bundle.caCert).toString("base64");
}

/** When the serving cert expires, and whether it covers every name asked for. */
export function inspectServing(bundle: Pick<CertBundle, "cert" | "caCert">, dnsNames: string[]): { notAfter: Date; coversNames: boolean; signedByCa: boolean } {
  const cert = new X509Certificate(bundle.cert);
  const ca = new X509Certificate(bundle.caCert);
  return {
    notAfter: new Date(cert.validTo),
    coversNames: dnsNames.every((n) => cert.checkHost(n, { subject: "never" }) !== undefined),
    signedByCa: cert.verify(ca.publicKey),
  };
}

/** Write a bundle atomically (temp + rename per file; key files 0600). */
export function writeBundle(dir: string, bundle: CertBundle): void {
  mkdirSync(dir, { recursive: true });
  for (const [field, file] of Object.entries(CERT_FILES) as [keyof CertBundle, string][]) {
    const tmp = join(dir, `.${file}.tmp`);
    writeFileSync(tmp, bundle[field], { mode: file.endsWith(".key") ? 0o600 : 0o644 });
    renameSync(tmp, join(dir, file));
  }
}

export function readBundle(dir: string): CertBundle | null {
  const paths = Object.values(CERT_FILES).map((f) => join(dir, f));
  if (!paths.every((p) => existsSync(p))) return null;
  const [caCert, caKey, cert, key] = paths.map((p) => readFileSync(p, "utf8")) as [string, string, string, string];
  return { caCert, caKey, cert, key };
}

/** For the local quick start: reuse `dir`'s certs when valid for localhost, else make them. */
export async function ensureLocalCerts(dir: string): Promise<{ bundle: CertBundle; created: boolean }> {
  const names = ["localhost"];
  const existing = readBundle(dir);
  if (existing) {
    try {
      const info = inspectServing(existing, names);
      if (info.coversNames && info.signedByCa && info.notAfter.getTime() > Date.now() + 86_400_000) {
        return { bundle: existing, created: false };
      }
    } catch {
      // unreadable PEM: regenerate below
    }
  }
  const bundle = await generateBundle({ dnsNames: names, ips: ["127.0.0.1", "::1"] });
  writeBundle(dir, bundle);
  return { bundle, created: true };
}
