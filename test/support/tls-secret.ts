// Test helpers: a CA + serving cert for localhost, written the way the kubelet writes
// a mounted Secret (files behind a `..data` symlink swapped atomically).
import { mkdirSync, mkdtempSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";
import { CERT_FILES, generateBundle, renewServing, type CertBundle } from "../../src/certs/generate.js";

export const LOCAL_NAMES = { dnsNames: ["localhost"], ips: ["127.0.0.1"] };

export function tempDir(prefix: string): string {
  return mkdtempSync(join(tmpdir(), `cache-io-${prefix}-`));
}

let generation = 0;

/**
 * Replace the Secret's files in one step, as the kubelet's AtomicWriter does: write a
 * new timestamped directory, point `..data` at it by renaming a symlink, and keep
 * `tls.crt -> ..data/tls.crt` links at the top.
 */
export function writeSecret(dir: string, files: Record<string, string>): void {
  const version = `..${Date.now()}_${process.pid}_${generation++}`;
  mkdirSync(join(dir, version), { recursive: true });
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, version, name), text, { mode: 0o600 });
  const data = join(dir, "..data");
  const old = existsSync(data) ? readlinkSync(data) : undefined;
  symlinkSync(version, join(dir, "..data_tmp"));
  renameSync(join(dir, "..data_tmp"), data);
  for (const name of Object.keys(files)) {
    if (!existsSync(join(dir, name))) symlinkSync(join("..data", name), join(dir, name));
  }
  if (old) rmSync(join(dir, old), { recursive: true, force: true });
}

export function secretFiles(bundle: CertBundle): Record<string, string> {
  return { [CERT_FILES.cert]: bundle.cert, [CERT_FILES.key]: bundle.key, [CERT_FILES.caCert]: bundle.caCert };
}

/** A fresh CA and localhost serving cert in a Secret-shaped temp directory. */
export async function makeCertDir(): Promise<{ dir: string; bundle: CertBundle }> {
  const dir = tempDir("certs");
  const bundle = await generateBundle(LOCAL_NAMES);
  writeSecret(dir, secretFiles(bundle));
  return { dir, bundle };
}

/** A new serving cert from the same CA (what a renewal writes into the Secret). */
export function renew(bundle: CertBundle, days?: number): Promise<CertBundle> {
  return renewServing(bundle, { ...LOCAL_NAMES, days });
}

/** A serving cert from the same CA valid only from `notBefore` to `notAfter` (expired, not yet valid, or about to expire). */
export async function servingValid(bundle: CertBundle, notBefore: Date, notAfter: Date): Promise<CertBundle> {
  const serving = await generate([{ name: "commonName", value: "localhost" }], {
    keyType: "ec",
    curve: "P-256",
    algorithm: "sha256",
    notBeforeDate: notBefore,
    notAfterDate: notAfter,
    ca: { key: bundle.caKey, cert: bundle.caCert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] },
    ],
  });
  return { ...bundle, cert: serving.cert, key: serving.private };
}
