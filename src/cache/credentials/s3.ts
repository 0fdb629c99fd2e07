// S3 and S3-compatible stores: SigV4 with the AWS SDK's signer (@smithy/signature-v4)
// and credential providers: static keys from the Secret dir, IRSA's web-identity token
// file, or the SDK's default chain (env, EKS Pod Identity, instance role). A URL that is
// already pre-signed (X-Amz-Signature) is sent as given.
import { Sha256 } from "@aws-crypto/sha256-js";
import { fromNodeProviderChain, fromTokenFile } from "@aws-sdk/credential-providers";
import { SignatureV4 } from "@smithy/signature-v4";
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from "@smithy/types";
import type { Credential } from "../../policy/credentials.js";
import { strictEncode } from "../../shared/protocol.js";
import type { Authorize } from "./http-kinds.js";
import { secretFiles, type SecretFilesOptions } from "./secret-files.js";

type S3Credential = Extract<Credential, { kind: "s3" }>;

export interface S3Options extends SecretFilesOptions {
  env?: NodeJS.ProcessEnv;
}

/** Refresh temporary credentials this long before they expire. */
const EARLY_REFRESH_MS = 5 * 60_000;

function memoized(provider: AwsCredentialIdentityProvider, now: () => number): AwsCredentialIdentityProvider {
  let cached: AwsCredentialIdentity | undefined;
  let pending: Promise<AwsCredentialIdentity> | undefined;
  return async () => {
    if (cached && (!cached.expiration || cached.expiration.getTime() - now() > EARLY_REFRESH_MS)) return cached;
    pending ??= provider()
      .then((c) => (cached = c))
      .finally(() => (pending = undefined));
    return pending;
  };
}

function providerFor(c: S3Credential, opts: S3Options): AwsCredentialIdentityProvider {
  const now = opts.now ?? Date.now;
  if (c.source === "secret") {
    const files = secretFiles(c.name, c.secretDir!, ["access-key-id", "secret-access-key"], opts);
    const token = secretFiles(c.name, c.secretDir!, ["session-token"], opts);
    return async () => {
      const keys = await files.read();
      const sessionToken = await token.read().then((t) => t["session-token"], () => undefined);
      return { accessKeyId: keys["access-key-id"]!, secretAccessKey: keys["secret-access-key"]!, ...(sessionToken ? { sessionToken } : {}) };
    };
  }
  const env = opts.env ?? process.env;
  const clientConfig = { region: c.region, ...(c.stsEndpoint ? { endpoint: c.stsEndpoint } : {}) };
  if (c.source === "webIdentity") {
    const roleArn = c.roleArn ?? env.AWS_ROLE_ARN;
    const webIdentityTokenFile = c.tokenFile ?? env.AWS_WEB_IDENTITY_TOKEN_FILE;
    return memoized(fromTokenFile({ roleArn, webIdentityTokenFile, roleSessionName: `cache-io-${c.name}`, clientConfig }), now);
  }
  return memoized(fromNodeProviderChain({ clientConfig }), now);
}

/** Each path segment decoded and strictly re-encoded: what S3 puts in the canonical request, sent as signed. */
function canonicalPath(pathname: string): string {
  return pathname
    .split("/")
    .map((seg) => {
      try {
        return strictEncode(decodeURIComponent(seg));
      } catch {
        return seg;
      }
    })
    .join("/");
}

export function s3Signer(c: S3Credential, opts: S3Options): Authorize {
  const signer = new SignatureV4({ service: "s3", region: c.region, credentials: providerFor(c, opts), sha256: Sha256, uriEscapePath: false, applyChecksum: false });
  return async (req) => {
    if (req.url.searchParams.has("X-Amz-Signature")) return req;
    const url = new URL(req.url);
    url.pathname = canonicalPath(url.pathname);
    const query: Record<string, string | string[]> = {};
    const pairs: string[] = [];
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
      pairs.push(`${strictEncode(k)}=${strictEncode(v)}`);
    }
    url.search = pairs.length ? `?${pairs.join("&")}` : "";
    const signed = await signer.sign({
      method: req.method,
      protocol: url.protocol,
      hostname: url.hostname,
      ...(url.port ? { port: Number(url.port) } : {}),
      path: url.pathname,
      query,
      headers: { ...req.headers, host: url.host, "x-amz-content-sha256": "UNSIGNED-PAYLOAD" },
    });
    return { ...req, url, headers: signed.headers as Record<string, string> };
  };
}
