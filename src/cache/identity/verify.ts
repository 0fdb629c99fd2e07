// Verify a caller's bearer token: a ServiceAccount token the API server signed (issuer
// keys, offline), for the node cache's audience, not expired, bound to a pod; a pod's
// must name THIS node, a peer's (the peer port) must be of the node cache's own
// ServiceAccount, on any node. Verified claims are remembered by the token's sha256
// until it expires (a bounded map), so a caller's many requests cost one signature check.
import { createHash } from "node:crypto";
import { decodeProtectedHeader, errors, jwtVerify, type JWTPayload } from "jose";
import { KUBERNETES_CLAIM, TOKEN_AUDIENCE, type KubernetesClaims } from "../../shared/identity.js";
import { CacheError, unauthorized } from "../errors.js";
import type { Caller } from "../request.js";
import type { Issuer } from "./issuer.js";

/** Longer is no ServiceAccount token (they are 1-2 KB); refused before any parsing. */
export const MAX_TOKEN_BYTES = 8 * 1024;
const ALGORITHMS = ["RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"];
const CLOCK_TOLERANCE_S = 5;

export interface VerifierOptions {
  nodeName: string;
  /** Verified tokens remembered at most (oldest forgotten first). */
  maxCached?: number;
}

/** What a verified token proves: a ServiceAccount, and the pod and node it is bound to. */
export interface Claims {
  namespace: string;
  serviceAccount: string;
  pod?: string;
  node: string;
}

/** The node cache's own ServiceAccount: the only one the peer port accepts. */
export interface OwnAccount {
  namespace: string;
  serviceAccount: string;
}

export class TokenVerifier {
  readonly #verified = new Map<string, { claims: Claims; expMs: number }>();
  readonly #max: number;

  constructor(
    private readonly issuer: Issuer,
    private readonly opts: VerifierOptions,
  ) {
    this.#max = opts.maxCached ?? 10_000;
  }

  get cached(): number {
    return this.#verified.size;
  }

  /** The caller (a pod on this node) an `Authorization` header proves, or a 401 with a one-line reason. */
  async verify(header: string | undefined): Promise<Caller> {
    const { namespace, serviceAccount, pod, node } = await this.claims(header);
    if (node !== this.opts.nodeName) throw unauthorized(`the token is bound to a pod on node "${node}", not this node "${this.opts.nodeName}": ask the node cache of your own node (status.hostIP)`);
    return { namespace, serviceAccount, ...(pod ? { pod } : {}) };
  }

  /** The peer (a node cache pod, on any node) an `Authorization` header proves: the token must be of `own`, else 401. */
  async verifyPeer(header: string | undefined, own: OwnAccount): Promise<Claims> {
    const claims = await this.claims(header);
    if (claims.namespace !== own.namespace || claims.serviceAccount !== own.serviceAccount) {
      throw unauthorized(
        `the token is of ServiceAccount ${claims.namespace}/${claims.serviceAccount}, not the node cache's own ${own.namespace}/${own.serviceAccount}: the peer port (cache.peers.port) serves only node caches; pods ask on cache.port`,
      );
    }
    return claims;
  }

  /** What a token proves (any node), or a 401. */
  async claims(header: string | undefined): Promise<Claims> {
    const token = bearer(header);
    const id = createHash("sha256").update(token).digest("base64url");
    const hit = this.#verified.get(id);
    if (hit && hit.expMs > Date.now()) return hit.claims;
    if (hit) this.#verified.delete(id);
    const { claims, expMs } = await this.#check(token);
    this.#verified.set(id, { claims, expMs });
    for (const k of this.#verified.keys()) {
      if (this.#verified.size <= this.#max) break;
      this.#verified.delete(k);
    }
    return claims;
  }

  async #check(token: string): Promise<{ claims: Claims; expMs: number }> {
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw unauthorized("the bearer token is not a JWT (a ServiceAccount token for audience " + TOKEN_AUDIENCE + " is needed)");
    }
    let current = await this.#issuer();
    // An unknown key id: the API server may have a new key; read the keys again (rate-limited).
    if (!this.issuer.knows(kid) && (await this.issuer.refresh())) current = await this.#issuer();
    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, current.keys, {
        issuer: current.issuer,
        audience: TOKEN_AUDIENCE,
        algorithms: ALGORITHMS,
        clockTolerance: CLOCK_TOLERANCE_S,
        requiredClaims: ["exp"],
      }));
    } catch (err) {
      throw unauthorized(reason(err, current.issuer));
    }
    return { claims: claimsOf(payload), expMs: payload.exp! * 1000 };
  }

  async #issuer() {
    try {
      return await this.issuer.current();
    } catch (err) {
      throw Object.assign(new CacheError(503, "not_ready", `cannot verify tokens now: ${(err as Error).message}`), { retryAfter: 10 });
    }
  }

}

function claimsOf(payload: JWTPayload): Claims {
  const k = payload[KUBERNETES_CLAIM] as KubernetesClaims | undefined;
  const namespace = k?.namespace;
  const serviceAccount = k?.serviceaccount?.name;
  if (!namespace || !serviceAccount) throw unauthorized(`the token has no ${KUBERNETES_CLAIM} namespace and serviceaccount claims: it is not a ServiceAccount token`);
  const node = k.node?.name;
  if (!node) {
    throw unauthorized(`the token names no node (${KUBERNETES_CLAIM}.node): only a token bound to a pod (projected into the pod, Kubernetes 1.32+) is accepted`);
  }
  return { namespace, serviceAccount, node, ...(k.pod?.name ? { pod: k.pod.name } : {}) };
}

function bearer(header: string | undefined): string {
  if (!header) throw unauthorized(`no Authorization: Bearer header: file requests need a ServiceAccount token for audience ${TOKEN_AUDIENCE} (the injected init container sends it)`);
  if (header.length > MAX_TOKEN_BYTES + 7) throw unauthorized(`the Authorization header is longer than ${MAX_TOKEN_BYTES} bytes: no ServiceAccount token is`);
  const m = /^Bearer +([A-Za-z0-9._~+/=-]+) *$/i.exec(header);
  if (!m) throw unauthorized("the Authorization header is not \"Bearer <token>\"");
  return m[1]!;
}

function reason(err: unknown, issuer: string): string {
  if (err instanceof errors.JWTExpired) {
    const exp = Number(err.payload.exp);
    return `the token expired at ${Number.isFinite(exp) ? new Date(exp * 1000).toISOString() : "(no time)"}: the kubelet refreshes projected tokens; an old copy was sent`;
  }
  if (err instanceof errors.JWTClaimValidationFailed) {
    if (err.claim === "aud") return `the token's audience is ${JSON.stringify(err.payload.aud)}, not "${TOKEN_AUDIENCE}": project a token with audience ${TOKEN_AUDIENCE}`;
    if (err.claim === "iss") return `the token's issuer is ${JSON.stringify(err.payload.iss)}, not this cluster's "${issuer}"`;
    return `the token's ${err.claim} claim is invalid: ${err.message}`;
  }
  if (err instanceof errors.JWKSNoMatchingKey || err instanceof errors.JWSSignatureVerificationFailed) {
    return "the token's signature does not verify against the API server's ServiceAccount issuer keys";
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return "the token's signing algorithm is not allowed (asymmetric RS/ES/PS only)";
  return `the token is invalid: ${(err as Error).message}`;
}
