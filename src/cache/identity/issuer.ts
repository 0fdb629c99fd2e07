// The API server's ServiceAccount issuer: its name (OIDC discovery) and signing keys
// (JWKS), read with the node cache's own credentials (in-cluster ServiceAccount or a
// kubeconfig). Keys are re-read on an unknown key id, at most once per backoff
// interval (doubling while reads fail or find nothing new), and when older than maxAgeMs.
import type { KubeConfig } from "@kubernetes/client-node";
import http from "node:http";
import https from "node:https";
import { createLocalJWKSet, type JSONWebKeySet, type JWTVerifyGetKey } from "jose";

const MAX_BODY = 1 << 20;
const TIMEOUT_MS = 10_000;

export interface IssuerOptions {
  /** Shortest wait between two reads of the keys (doubles up to maxBackoffMs while reads fail or bring no new key). */
  minRefreshMs?: number;
  maxBackoffMs?: number;
  /** Keys older than this are re-read (a rotated-out key stops verifying). */
  maxAgeMs?: number;
}

export class Issuer {
  #issuer: string | undefined;
  #keys: JWTVerifyGetKey | undefined;
  #kids = new Set<string>();
  #readAt = 0;
  #backoffMs: number;
  #reading: Promise<void> | undefined;
  #lastError = "";
  readonly #o: Required<IssuerOptions>;

  constructor(private readonly kc: KubeConfig, opts: IssuerOptions = {}) {
    this.#o = { minRefreshMs: opts.minRefreshMs ?? 10_000, maxBackoffMs: opts.maxBackoffMs ?? 300_000, maxAgeMs: opts.maxAgeMs ?? 3_600_000 };
    this.#backoffMs = this.#o.minRefreshMs;
  }

  /** Why the keys could not be read last time ("" when they could). */
  get lastError(): string {
    return this.#lastError;
  }

  /** The issuer name and a key lookup, reading them first if needed. */
  async current(): Promise<{ issuer: string; keys: JWTVerifyGetKey }> {
    // Without keys, reads are rate-limited too (an API server outage must not turn every request into a read).
    if (!this.#keys) await this.refresh(this.#readAt === 0);
    else if (Date.now() - this.#readAt > this.#o.maxAgeMs) void this.refresh(true); // old keys serve meanwhile
    if (!this.#issuer || !this.#keys) throw new Error(`the API server's issuer keys could not be read: ${this.#lastError || "no answer yet"}`);
    return { issuer: this.#issuer, keys: this.#keys };
  }

  /** Whether `kid` is a known key id. */
  knows(kid: string | undefined): boolean {
    return kid !== undefined && this.#kids.has(kid);
  }

  /** Read the keys again unless the last read was within the backoff; true when a read happened. */
  async refresh(force = false): Promise<boolean> {
    if (this.#reading) return this.#reading.then(() => true);
    if (!force && Date.now() - this.#readAt < this.#backoffMs) return false;
    this.#reading = this.#read().finally(() => (this.#reading = undefined));
    await this.#reading;
    return true;
  }

  async #read(): Promise<void> {
    const before = this.#kids;
    this.#readAt = Date.now();
    try {
      const discovery = (await this.#get("/.well-known/openid-configuration")) as { issuer?: unknown };
      if (typeof discovery.issuer !== "string" || !discovery.issuer) throw new Error("OIDC discovery has no issuer");
      const jwks = (await this.#get("/openid/v1/jwks")) as JSONWebKeySet;
      if (!Array.isArray(jwks.keys)) throw new Error("/openid/v1/jwks has no keys array");
      this.#issuer = discovery.issuer;
      this.#keys = createLocalJWKSet(jwks);
      this.#kids = new Set(jwks.keys.map((k) => k.kid).filter((k): k is string => typeof k === "string"));
      this.#lastError = "";
      const added = [...this.#kids].some((k) => !before.has(k));
      this.#backoffMs = added ? this.#o.minRefreshMs : Math.min(this.#backoffMs * 2, this.#o.maxBackoffMs);
    } catch (err) {
      this.#lastError = (err as Error).message;
      this.#backoffMs = Math.min(this.#backoffMs * 2, this.#o.maxBackoffMs);
    }
  }

  async #get(path: string): Promise<unknown> {
    const server = this.kc.getCurrentCluster()?.server;
    if (!server) throw new Error("the cluster config names no server");
    const url = new URL(path, server);
    const opts: https.RequestOptions = {};
    await this.kc.applyToHTTPSOptions(opts);
    const client = url.protocol === "http:" ? http : https;
    return new Promise((resolve, reject) => {
      const req = client.get(url, { ...opts, timeout: TIMEOUT_MS, headers: { ...opts.headers, accept: "application/json, application/jwk-set+json" } }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on("data", (d: Buffer) => {
          size += d.length;
          if (size > MAX_BODY) req.destroy(new Error(`GET ${url.href}: answer larger than ${MAX_BODY} bytes`));
          else chunks.push(d);
        });
        res.on("end", () => {
          const text = Buffer.concat(chunks).toString("utf8");
          if (res.statusCode !== 200) return reject(new Error(`GET ${url.href}: ${res.statusCode} ${text.slice(0, 200).replace(/\s+/g, " ")}`));
          try {
            resolve(JSON.parse(text));
          } catch {
            reject(new Error(`GET ${url.href}: not JSON`));
          }
        });
        res.on("error", reject);
      });
      req.on("timeout", () => req.destroy(new Error(`GET ${url.href}: no answer in ${TIMEOUT_MS} ms`)));
      req.on("error", reject);
    });
  }
}
