// The HTTPS server: TLS 1.2+, cert and key read from a directory (a kubernetes.io/tls
// Secret's layout), polled and swapped in with setSecureContext, never a restart.
import { X509Certificate, createPrivateKey } from "node:crypto";
import { readFile } from "node:fs/promises";
import type { RequestListener } from "node:http";
import { createServer, type Server } from "node:https";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { createSecureContext, type SecureContextOptions } from "node:tls";
import type { Logger } from "../shared/log.js";
import { CERT_FILES } from "../certs/generate.js";
import { DEFAULT_BODY_TIMEOUT_MS, DEFAULT_MAX_CONNECTIONS } from "./limits.js";
import type { ReloadResult } from "./metrics.js";

export interface ServingCert {
  notBefore: Date;
  notAfter: Date;
  fingerprint256: string;
  serialNumber: string;
  subject: string;
}

interface KeyPair {
  cert: string;
  key: string;
  info: ServingCert;
}

export interface HttpsOptions {
  /** Directory holding tls.crt and tls.key. */
  dir: string;
  host: string;
  port: number;
  /** How often the files are compared with what is in force. */
  pollMs?: number;
  log?: Logger;
  onCertLoad?(result: ReloadResult, cert?: ServingCert): void;
  /** Open connections at most (default DEFAULT_MAX_CONNECTIONS). */
  maxConnections?: number;
  /** Headers must be in within this; the review route's own body deadline is the same (default 2.5 s). */
  requestTimeoutMs?: number;
}

export interface HttpsHandle {
  server: Server;
  port: number;
  /** The certificate new connections get. */
  cert(): ServingCert;
  /**
   * Drain for `delayMs` (keep serving, but every response closes its connection, so
   * clients reconnect, through the Service, to another replica), then stop accepting,
   * let in-flight requests finish, and force-close whatever is left after `graceMs`.
   */
  close(graceMs?: number, delayMs?: number): Promise<void>;
}

/**
 * AEAD suites only: for TLS 1.2, ECDHE with AES-GCM or ChaCha20-Poly1305 (no CBC, no
 * static RSA key exchange); for TLS 1.3, its three default suites. Both cert key types.
 */
export const CIPHERS = [
  "TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
  "ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
  "ECDHE-ECDSA-AES256-GCM-SHA384", "ECDHE-RSA-AES256-GCM-SHA384",
  "ECDHE-ECDSA-CHACHA20-POLY1305", "ECDHE-RSA-CHACHA20-POLY1305",
].join(":");

const TLS_BASE: SecureContextOptions = { minVersion: "TLSv1.2", ciphers: CIPHERS, honorCipherOrder: true };

/** Check a cert/key pair the way the server will use it; the error says which file is wrong. */
function parsePair(dir: string, cert: string, key: string): KeyPair {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (err) {
    throw new Error(`${join(dir, CERT_FILES.cert)} is not a PEM certificate (${(err as Error).message})`);
  }
  let privateKey;
  try {
    privateKey = createPrivateKey(key);
  } catch (err) {
    throw new Error(`${join(dir, CERT_FILES.key)} is not a PEM private key (${(err as Error).message})`);
  }
  if (!x509.checkPrivateKey(privateKey)) {
    throw new Error(`${join(dir, CERT_FILES.key)} does not belong to the certificate in ${join(dir, CERT_FILES.cert)}`);
  }
  createSecureContext({ ...TLS_BASE, cert, key }); // what setSecureContext will do; throws on anything else OpenSSL rejects
  const info = { notBefore: new Date(x509.validFrom), notAfter: new Date(x509.validTo), fingerprint256: x509.fingerprint256, serialNumber: x509.serialNumber, subject: x509.subject };
  return { cert, key, info };
}

async function readPairText(dir: string): Promise<[string, string]> {
  const read = (file: string) => readFile(join(dir, file), "utf8");
  return [await read(CERT_FILES.cert), await read(CERT_FILES.key)];
}

/**
 * Read the pair twice and keep it only when both reads agree: a Secret update swaps
 * a symlink, and a read of tls.crt before the swap plus tls.key after it is not a
 * bad pair, just a torn read. Returns null while the files are in flux.
 */
async function readStablePair(dir: string): Promise<[string, string] | null> {
  const first = await readPairText(dir);
  const second = await readPairText(dir);
  return first[0] === second[0] && first[1] === second[1] ? first : null;
}

/** Load the pair at start; throws with what is missing and how to get it. */
export async function loadKeyPair(dir: string): Promise<KeyPair> {
  let text: [string, string];
  try {
    text = await readPairText(dir);
  } catch (err) {
    throw new Error(
      `cannot read the serving certificate in ${dir} (${(err as Error).message}); ` +
        `it needs ${CERT_FILES.cert} and ${CERT_FILES.key}: run \`cache-io certs --out ${dir}\` or mount the TLS Secret there`,
    );
  }
  return parsePair(dir, ...text);
}

/** A renewal must not swap a valid cert for one every client refuses: expired, or not valid yet. */
function checkValidNow(dir: string, info: ServingCert): void {
  const now = Date.now();
  const when = `valid from ${info.notBefore.toISOString()} to ${info.notAfter.toISOString()}`;
  if (info.notAfter.getTime() <= now) throw new Error(`${join(dir, CERT_FILES.cert)} has expired (${when}); renew it`);
  if (info.notBefore.getTime() > now) throw new Error(`${join(dir, CERT_FILES.cert)} is not valid yet (${when}); check the issuer's clock`);
}

/** Poll the directory and swap the context when the pair changes; a bad pair keeps the old one. */
function watchPair(server: Server, opts: HttpsOptions, initial: KeyPair, setCurrent: (p: KeyPair) => void): () => void {
  let lastSeen = initial.cert + "\0" + initial.key;
  let busy = false;
  const check = async () => {
    const text = await readStablePair(opts.dir).catch((err: Error) => err);
    if (text === null) return;
    const seen = text instanceof Error ? `error:${text.message}` : text.join("\0");
    if (seen === lastSeen) return; // judge each content once: a bad pair is counted once, not every poll
    lastSeen = seen;
    try {
      if (text instanceof Error) throw new Error(`cannot read the serving certificate in ${opts.dir}: ${text.message}`);
      const pair = parsePair(opts.dir, ...text);
      checkValidNow(opts.dir, pair.info);
      server.setSecureContext({ ...TLS_BASE, cert: pair.cert, key: pair.key });
      setCurrent(pair);
      opts.log?.info({ notAfter: pair.info.notAfter, serial: pair.info.serialNumber }, "serving certificate reloaded");
      opts.onCertLoad?.("success", pair.info);
    } catch (err) {
      opts.log?.error({ err: (err as Error).message }, "serving certificate not reloaded; the previous one stays in force");
      opts.onCertLoad?.("failure");
    }
  };
  const timer = setInterval(() => {
    if (busy) return;
    busy = true;
    void check().finally(() => (busy = false));
  }, opts.pollMs ?? 1000);
  timer.unref();
  return () => clearInterval(timer);
}

export async function startHttpsServer(app: RequestListener, opts: HttpsOptions): Promise<HttpsHandle> {
  let current = await loadKeyPair(opts.dir);
  const deadline = opts.requestTimeoutMs ?? DEFAULT_BODY_TIMEOUT_MS;
  // Node checks the headers and request deadlines only every connectionsCheckingInterval (30 s by default).
  const server = createServer({
    ...TLS_BASE,
    cert: current.cert,
    key: current.key,
    handshakeTimeout: 5_000,
    headersTimeout: deadline,
    // A backstop for every route; the review route answers 408 itself at `deadline`.
    requestTimeout: 2 * deadline,
    connectionsCheckingInterval: Math.min(500, deadline),
  }, app);
  // kube-apiserver waits at most timeoutSeconds (5 s) for a review and keeps connections alive between reviews.
  server.keepAliveTimeout = 60_000;
  server.maxConnections = opts.maxConnections ?? DEFAULT_MAX_CONNECTIONS;
  opts.onCertLoad?.("success", current.info);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(opts.port, opts.host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const stopWatch = watchPair(server, opts, current, (p) => (current = p));
  return {
    server,
    port: (server.address() as AddressInfo).port,
    cert: () => current.info,
    close: (graceMs = 10_000, delayMs = 0) => closeGracefully(server, stopWatch, graceMs, delayMs),
  };
}

async function closeGracefully(server: Server, stopWatch: () => void, graceMs: number, delayMs: number): Promise<void> {
  stopWatch();
  // Closing an idle keep-alive connection races with a client that is just writing its
  // next request on it (the API server does not retry a POST: "broken pipe"). While
  // draining, each connection is closed by its own next response instead.
  server.prependListener("request", (_req, res) => {
    res.shouldKeepAlive = false;
  });
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
  return new Promise((resolve) => {
    const force = setTimeout(() => server.closeAllConnections(), graceMs);
    force.unref();
    // close() stops accepting and (Node 19+) drops idle keep-alive connections; in-flight requests finish.
    server.close(() => {
      clearTimeout(force);
      resolve();
    });
    server.closeIdleConnections();
  });
}
