// Private origins at the node cache: which credential (if any) applies to an origin URL,
// which namespaces may use it, and the origin `authorize` hook that signs each request
// (each redirect hop, each ranged part, revalidations). A credential applies only to the
// origins it names: a redirect to another host, or to plain http, gets none.
import type { Credential } from "../../policy/credentials.js";
import type { OriginRequest } from "../origin.js";
import type { Authorize } from "./http-kinds.js";
import { signerFor } from "./kinds.js";
import type { SecretFilesOptions } from "./secret-files.js";

import { CacheError } from "../errors.js";
import { SecretMaterialError } from "./secret-files.js";

export { SecretMaterialError };

export interface MatchedCredential {
  name: string;
  namespaces: readonly string[];
  /** Adds the credential to one origin request (same URL origin; headers and/or query). */
  authorize: Authorize;
}

export interface Credentials {
  /** The credential for `url`: most specific host, then longest pathPrefix, then policy order. */
  match(url: URL): MatchedCredential | undefined;
  /** May pods of `namespace` use the credential `name` (have files fetched with it, read them once cached)? */
  mayUse(name: string, namespace: string): boolean;
  /** The OriginSettings.authorize hook: signs requests to a matched origin, leaves others anonymous. */
  authorize(req: OriginRequest): Promise<OriginRequest>;
  /**
   * For an origin's 401/403/404 on `url`: a sentence to append to the error (which
   * credential was used and what to check, or that none matched), and the credential's
   * name for the `cache_io_cache_origin_auth_failures_total{credential}` metric
   * ("none" when no credential matched). Undefined for other statuses.
   */
  explain(url: string | URL, status: number): { credential: string; hint: string } | undefined;
  close(): void;
}

export interface CredentialsOptions extends SecretFilesOptions {
  /** Environment for the AWS SDK's credential providers (default process.env). */
  env?: NodeJS.ProcessEnv;
}

interface Entry extends MatchedCredential {
  host: string;
  wildcard: boolean;
  pathPrefix: string;
  scheme: string;
  order: number;
}

function hostMatches(entry: Entry, url: URL): boolean {
  const host = url.host.toLowerCase();
  if (!entry.wildcard) return host === entry.host;
  return host.endsWith(entry.host) && host.length > entry.host.length;
}

function specificity(e: Entry): number[] {
  return [e.wildcard ? 0 : 1, e.wildcard ? e.host.length : 0, e.pathPrefix.length, -e.order];
}

function moreSpecific(a: Entry, b: Entry): boolean {
  const sa = specificity(a);
  const sb = specificity(b);
  for (let i = 0; i < sa.length; i++) if (sa[i] !== sb[i]) return sa[i]! > sb[i]!;
  return false;
}

/** Errors of a signer or an SDK credential provider, as a 502 naming the credential (never its material). */
function guarded(name: string, sign: Authorize): Authorize {
  return (req) =>
    sign(req).catch((err: unknown) => {
      if (err instanceof CacheError) throw err;
      throw new SecretMaterialError(`credential ${name}: cannot sign the request: ${(err as Error)?.message ?? String(err)}`);
    });
}

const AUTH_STATUSES = new Set([401, 403, 404]);

export function createCredentials(policy: readonly Credential[], opts: CredentialsOptions = {}): Credentials {
  const entries: Entry[] = policy.map((c, order) => {
    const host = c.match.host.toLowerCase();
    const wildcard = host.startsWith("*.");
    return {
      name: c.name,
      namespaces: [...c.namespaces],
      authorize: guarded(c.name, signerFor(c, opts)),
      host: wildcard ? host.slice(1) : host,
      wildcard,
      pathPrefix: c.match.pathPrefix ?? "",
      scheme: `${c.match.scheme}:`,
      order,
    };
  });
  const byName = new Map(entries.map((e) => [e.name, e]));

  function match(url: URL): MatchedCredential | undefined {
    let best: Entry | undefined;
    for (const e of entries) {
      if (url.protocol !== e.scheme || !hostMatches(e, url) || !url.pathname.startsWith(e.pathPrefix)) continue;
      if (!best || moreSpecific(e, best)) best = e;
    }
    return best && { name: best.name, namespaces: best.namespaces, authorize: best.authorize };
  }

  return {
    match,
    mayUse: (name, namespace) => byName.get(name)?.namespaces.includes(namespace) ?? false,
    authorize: (req) => {
      const m = match(req.url);
      return m ? m.authorize(req) : Promise.resolve(req);
    },
    explain(url, status) {
      if (!AUTH_STATUSES.has(status)) return undefined;
      let u: URL;
      try {
        u = typeof url === "string" ? new URL(url) : url;
      } catch {
        return undefined;
      }
      const m = match(u);
      if (!m) {
        return status === 404
          ? undefined
          : { credential: "none", hint: "no credential in the policy matches this origin and path: add one under credentials: (docs/PRIVATE-ORIGINS.md), or give a pre-signed URL" };
      }
      const what = status === 404 ? "the object does not exist, or (S3, Azure) the credential may not list or read it" : "the credential was refused: it may be wrong, revoked or expired, or lack read access to this object";
      return { credential: m.name, hint: `sent with credential ${m.name}: ${what}; fix the Secret or role it names (the node cache re-reads a changed Secret on the next request)` };
    },
    close() {},
  };
}
