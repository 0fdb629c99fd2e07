// Who may do what at the node cache: the caller a request's bearer token proves (per the
// policy's identity.mode; on the peer port, a node cache acting for the caller named in
// x-cache-io-on-behalf-of), the origin rules of the caller's namespace, whether it may use
// the private-origin credential a URL gets (also for a cached file: its recorded URL),
// and the fills in flight each namespace may start.
import type { KubeConfig } from "@kubernetes/client-node";
import { cacheOriginRules, settingsFor } from "../../policy/load.js";
import type { Policy } from "../../policy/schema.js";
import { checkOriginUrl, type OriginRules } from "../../shared/origin.js";
import { createCredentials, type Credentials } from "../credentials/index.js";
import { CacheError, busy, refused, unauthorized } from "../errors.js";
import { Slots } from "../limits.js";
import type { CacheMetrics } from "../metrics.js";
import type { FillRequest } from "../fill-state.js";
import type { OriginRequest } from "../origin.js";
import { redact } from "../redact.js";
import { namespaceRefusal, parseOnBehalfOf, type Caller, type ObjectRequest } from "../request.js";
import { Issuer, type IssuerOptions } from "./issuer.js";
import { TokenVerifier, type OwnAccount } from "./verify.js";

export interface AccessOptions {
  policy(): Policy;
  metrics: CacheMetrics;
  nodeName?: string;
  /** Where tokens are verified (the API server's issuer keys). */
  kubeConfig?: KubeConfig | null;
  issuer?: IssuerOptions;
}

export class Access {
  readonly verifier: TokenVerifier | undefined;
  /** Fills in flight started by each namespace's callers. */
  readonly namespaceFills = new Slots();
  readonly #fillOwners = new Set<string>();
  #credentials: { policy: Policy; creds: Credentials } | undefined;

  constructor(private readonly o: AccessOptions) {
    if (o.kubeConfig && o.nodeName) this.verifier = new TokenVerifier(new Issuer(o.kubeConfig, o.issuer), { nodeName: o.nodeName });
  }

  /** Why tokens cannot be checked as the policy asks (not ready), or null. */
  problem(): string | null {
    if (this.o.policy().identity.mode !== "required" || this.verifier) return null;
    return "identity.mode is required, but this node cache cannot verify tokens: start it with --node-name and a cluster config (in-cluster ServiceAccount or KUBECONFIG)";
  }

  /**
   * The verified caller of a request, undefined for an anonymous caller identity.mode lets
   * in, or a 401 (503 when tokens are required but this cache cannot verify them).
   */
  async identify(authorization: string | undefined): Promise<Caller | undefined> {
    const mode = this.o.policy().identity.mode;
    if (mode === "off" || (mode === "optional" && (!authorization || !this.verifier))) return undefined;
    return this.#counted(this.#verifier().verify(authorization));
  }

  /**
   * A request on the peer port: the token must be of the node cache's own ServiceAccount
   * (`own`; bound to a pod on any node), and the caller is the one the peer names in
   * x-cache-io-on-behalf-of, with `peer: true`. Without that header the request has an
   * anonymous caller's rights, or (identity.mode required) a 403. Where identity.mode lets
   * anonymous callers in and no token is sent (or tokens cannot be checked), the header
   * is not trusted and the request is anonymous too.
   */
  async identifyPeer(authorization: string | undefined, onBehalfOf: string | string[] | undefined, own: OwnAccount, forItself?: () => boolean): Promise<Caller | undefined> {
    const caller = parseOnBehalfOf(onBehalfOf);
    const mode = this.o.policy().identity.mode;
    if (mode === "off" || (mode === "optional" && (!authorization || !this.verifier))) return undefined;
    await this.#counted(this.#verifier().verifyPeer(authorization, own));
    if (caller) return { ...caller, peer: true };
    // A peer's own pre-warm (no caller to name) may ask for the policy's pre-warm files only.
    if (mode === "required" && !forItself?.()) {
      throw new CacheError(403, "unauthenticated", "a peer request needs x-cache-io-on-behalf-of: <namespace>/<serviceaccount> of the caller it is for (identity.mode is required: no anonymous fills; without it a peer may ask only for the files of cache.prewarm)");
    }
    return undefined;
  }

  #verifier(): TokenVerifier {
    if (!this.verifier) throw Object.assign(new CacheError(503, "not_ready", this.problem() ?? "this node cache cannot verify tokens: start it with --node-name and a cluster config"), { retryAfter: 10 });
    return this.verifier;
  }

  async #counted<T>(verified: Promise<T>): Promise<T> {
    try {
      const r = await verified;
      this.o.metrics.auth.inc({ result: "ok" });
      return r;
    } catch (err) {
      this.o.metrics.auth.inc({ result: err instanceof CacheError && err.status === 401 ? "refused" : "error" });
      throw err;
    }
  }

  /** A caller's namespace's origin rules; the union of every namespace's for an anonymous caller. */
  rulesFor(caller: Caller | undefined): OriginRules {
    const policy = this.o.policy();
    return caller ? settingsFor(policy, caller.namespace).origins : cacheOriginRules(policy);
  }

  /** The private-origin credentials of the policy in force (rebuilt when it reloads). */
  credentials(): Credentials {
    const policy = this.o.policy();
    if (this.#credentials?.policy !== policy) {
      this.#credentials?.creds.close();
      this.#credentials = { policy, creds: createCredentials(policy.credentials) };
    }
    return this.#credentials.creds;
  }

  /**
   * The origin `authorize` hook of one fill: signs requests to an origin a credential
   * names, when the fill's caller may use that credential (or the fill is the cache's own
   * pre-warm). A redirect to such an origin for a caller that may not use it is refused.
   */
  authorize(req: OriginRequest, fill: Pick<FillRequest, "caller" | "prewarm">): Promise<OriginRequest> {
    const cred = this.credentials().match(req.url);
    if (!cred) return Promise.resolve(req);
    const ns = fill.caller?.namespace;
    if (fill.prewarm || (ns !== undefined && cred.namespaces.includes(ns))) return cred.authorize(req);
    const who = ns === undefined ? "an anonymous caller" : `namespace "${ns}"`;
    return Promise.reject(refused(`${redact(req.url)} needs credential "${cred.name}", which ${who} may not use (credentials[].namespaces)`));
  }

  /**
   * May the caller have `url` (a request's, or a cached file's recorded one)? Its
   * namespace's allow-list, and for a private origin the credential's namespaces: an
   * anonymous caller never gets a file fetched with a credential (401).
   */
  check(caller: Caller | undefined, url: string): void {
    const rules = this.rulesFor(caller);
    const why = checkOriginUrl(new URL(url), rules);
    if (why) throw refused(caller ? namespaceRefusal(caller, url, rules, why) : `origin of ${redact(url)} refused: ${why}`);
    const cred = this.credentials().match(new URL(url));
    if (!cred) return;
    if (!caller) {
      throw unauthorized(`${redact(url)} is a private origin (credential "${cred.name}"): only a caller with a verified ServiceAccount token of one of its namespaces gets it (identity.mode optional or required)`);
    }
    if (!cred.namespaces.includes(caller.namespace)) {
      throw refused(`namespace "${caller.namespace}" may not use credential "${cred.name}" for ${redact(url)} (its namespaces: ${JSON.stringify(cred.namespaces)}, credentials[].namespaces)`);
    }
  }

  /**
   * A verified caller that would start a new fill takes one of its namespace's
   * identity.maxFillsPerNamespace slots until the fill ends; joining one in flight is
   * free. `start` starts or joins the fill; the slot is held until `done` settles.
   */
  startFill<T extends { joined: boolean; fill: { promise: Promise<unknown> } }>(req: ObjectRequest, start: () => T): T {
    if (!req.caller || this.#fillOwners.has(req.key)) return start();
    const ns = req.caller.namespace;
    const max = this.o.policy().identity.maxFillsPerNamespace;
    const slot = this.namespaceFills.acquire(ns, { total: Number.POSITIVE_INFINITY, perGroup: max });
    if (!("release" in slot)) {
      this.o.metrics.downloadsRefused.inc({ reason: "max_fills_per_namespace" });
      throw busy(`namespace "${ns}" already has ${slot.count} fills from origins in flight on this node, its limit (identity.maxFillsPerNamespace=${max}); retry when they end, or raise identity.maxFillsPerNamespace`);
    }
    let r: T;
    try {
      r = start();
    } catch (err) {
      slot.release();
      throw err;
    }
    if (r.joined) {
      slot.release();
      return r;
    }
    this.#fillOwners.add(req.key);
    const done = () => {
      this.#fillOwners.delete(req.key);
      slot.release();
    };
    r.fill.promise.then(done, done);
    return r;
  }
}
