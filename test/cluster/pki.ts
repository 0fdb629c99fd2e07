// The test control plane's PKI, made in TypeScript with `selfsigned` (as src/certs does):
// one CA, the API server's serving cert for 127.0.0.1/localhost, client certs (admin in
// system:masters, and one per component), the ServiceAccount signing key, kubeconfigs.
import { generateKeyPairSync } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { generate } from "selfsigned";

export interface Pem {
  cert: string;
  key: string;
}

export interface ClusterPki {
  ca: Pem;
  apiserver: Pem;
  admin: Pem;
  /** RSA private key (PEM) the API server signs ServiceAccount tokens with. */
  saKey: string;
  saPub: string;
}

const KEY = { keyType: "ec" as const, curve: "P-256" as const, algorithm: "sha256" };
const DAY = 86_400_000;

function validity(days: number) {
  const notBeforeDate = new Date(Date.now() - 5 * 60_000);
  return { notBeforeDate, notAfterDate: new Date(notBeforeDate.getTime() + days * DAY) };
}

async function makeCa(): Promise<Pem> {
  const ca = await generate([{ name: "commonName", value: "cache-io-test-cluster-ca" }], {
    ...KEY,
    ...validity(7),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: ca.cert, key: ca.private };
}

/** A client cert: CN is the user name, each O a group (what the API server's x509 authenticator reads). */
export async function clientCert(ca: Pem, user: string, groups: string[] = []): Promise<Pem> {
  const subject = [{ name: "commonName", value: user }, ...groups.map((g) => ({ name: "organizationName", value: g }))];
  const c = await generate(subject, {
    ...KEY,
    ...validity(2),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, critical: true },
      { name: "extKeyUsage", clientAuth: true },
    ],
  });
  return { cert: c.cert, key: c.private };
}

async function servingCert(ca: Pem): Promise<Pem> {
  const names = ["localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"];
  const c = await generate([{ name: "commonName", value: "kube-apiserver" }], {
    ...KEY,
    ...validity(2),
    ca: { key: ca.key, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [...names.map((value) => ({ type: 2 as const, value })), { type: 7 as const, ip: "127.0.0.1" }] },
    ],
  });
  return { cert: c.cert, key: c.private };
}

export async function makePki(): Promise<ClusterPki> {
  const ca = await makeCa();
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    ca,
    apiserver: await servingCert(ca),
    admin: await clientCert(ca, "cache-io-test-admin", ["system:masters"]),
    saKey: privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    saPub: publicKey.export({ type: "spki", format: "pem" }).toString(),
  };
}

/** Write the PKI as files the components take as flags; returns their paths. */
export function writePki(dir: string, pki: ClusterPki): Record<"ca" | "caKey" | "apiCert" | "apiKey" | "adminCert" | "adminKey" | "saKey" | "saPub", string> {
  const files = {
    ca: ["ca.crt", pki.ca.cert],
    caKey: ["ca.key", pki.ca.key],
    apiCert: ["apiserver.crt", pki.apiserver.cert],
    apiKey: ["apiserver.key", pki.apiserver.key],
    adminCert: ["admin.crt", pki.admin.cert],
    adminKey: ["admin.key", pki.admin.key],
    saKey: ["sa.key", pki.saKey],
    saPub: ["sa.pub", pki.saPub],
  } as const;
  const out = {} as Record<keyof typeof files, string>;
  for (const [k, [name, text]] of Object.entries(files) as [keyof typeof files, readonly [string, string]][]) {
    out[k] = join(dir, name);
    writeFileSync(out[k], text, { mode: name.endsWith(".key") ? 0o600 : 0o644 });
  }
  return out;
}

export type Credentials = { clientCert: string; clientKey: string } | { token: string };

/** A kubeconfig (YAML is a superset of JSON) with the CA and credentials inline. */
export function kubeconfig(server: string, caPem: string, user: string, creds: Credentials, namespace = "default"): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  const userBody = "token" in creds
    ? { token: creds.token }
    : { "client-certificate-data": b64(creds.clientCert), "client-key-data": b64(creds.clientKey) };
  return JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "cache-io-test", cluster: { server, "certificate-authority-data": b64(caPem) } }],
    users: [{ name: user, user: userBody }],
    contexts: [{ name: "cache-io-test", context: { cluster: "cache-io-test", user, namespace } }],
    "current-context": "cache-io-test",
  }, null, 2);
}
