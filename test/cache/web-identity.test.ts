// S3 with web identity (IRSA's flow), as far as this machine allows: the node cache's
// credential (kind s3, source webIdentity) reads a REAL projected ServiceAccount token
// (TokenRequest bound to a pod of the node cache's ServiceAccount, audience
// sts.amazonaws.com, from the test cluster's API server), the AWS SDK's fromTokenFile
// exchanges it at an STS STAND-IN on loopback (test/support/sts.ts: it verifies the token
// against the API server's JWKS with jose, as AWS verifies an OIDC provider's tokens, and
// answers with keys versitygw accepts), and the SigV4-signed GETs to versitygw (an S3
// gateway that verifies SigV4) succeed. A token for the wrong audience is refused by the
// stand-in, and the fill's error carries STS's answer. Not tested: real AWS STS and IAM.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JSONWebKeySet } from "jose";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createCredentials, type Credentials } from "../../src/cache/credentials/index.js";
import { credentialsSchema } from "../../src/policy/credentials.js";
import { parsePolicy } from "../../src/policy/load.js";
import { TOKEN_AUDIENCE } from "../../src/shared/identity.js";
import { originFetch } from "../support/auth-origin.js";
import { startS3, type S3Server } from "../support/s3/versitygw.js";
import { startSts, type Sts } from "../support/sts.js";
import type { Api } from "../cluster/api.js";
import { boundToken, scheduledPod } from "../cluster/bound-tokens.js";
import { describeCluster } from "../cluster/context.js";
import type { ClusterInfo } from "../cluster/harness.js";
import { adminApi, createNamespace, deleteNamespaces } from "../cluster/kube.js";

const NS = "web-identity";
const ROLE = "arn:aws:iam::123456789012:role/cache-io-node-cache";
const STS_AUDIENCE = "sts.amazonaws.com";

/** The API server's service-account issuer keys, as an OIDC provider publishes them (what AWS fetches from the issuer). */
function issuerKeys(c: ClusterInfo): Promise<JSONWebKeySet> {
  return new Promise((resolve, reject) => {
    const r = request(new URL("/openid/v1/jwks", c.server), { ca: c.ca, cert: c.adminCert, key: c.adminKey, headers: { accept: "application/jwk-set+json" } }, (res) => {
      let text = "";
      res.on("data", (d: Buffer) => (text += d));
      res.on("end", () => (res.statusCode === 200 ? resolve(JSON.parse(text) as JSONWebKeySet) : reject(new Error(`GET /openid/v1/jwks: ${res.statusCode} ${text}`))));
    });
    r.on("error", reject);
    r.end();
  });
}

describeCluster("S3 web identity: a real projected token, exchanged at an STS stand-in, signs GETs to versitygw", (c) => {
  let api: Api;
  let s3: S3Server;
  let sts: Sts;
  let dir: string;
  let creds: Credentials;

  let savedEndpoint: string | undefined;

  beforeAll(async () => {
    // Should the credential's stsEndpoint not reach the SDK, its STS client must not go to AWS: a dead loopback port.
    savedEndpoint = process.env.AWS_ENDPOINT_URL_STS;
    process.env.AWS_ENDPOINT_URL_STS = "http://127.0.0.1:9";
    api = adminApi(c);
    dir = mkdtempSync(join(tmpdir(), "cache-web-identity-"));
    await createNamespace(api, NS);
    await api.must("POST", `/api/v1/namespaces/${NS}/serviceaccounts`, { apiVersion: "v1", kind: "ServiceAccount", metadata: { name: "node-cache" } });
    const pod = await scheduledPod(api, NS, "node-cache-pod", c.nodes[0]!.name, "node-cache");
    // What the kubelet projects for IRSA (audience sts.amazonaws.com), and one for another audience.
    mkdirSync(join(dir, "irsa"));
    writeFileSync(join(dir, "irsa", "token"), await boundToken(api, pod, STS_AUDIENCE));
    writeFileSync(join(dir, "irsa", "wrong-audience"), await boundToken(api, pod, TOKEN_AUDIENCE));
    s3 = await startS3();
    s3.put("models", "llama/w.bin", "weights via web identity");
    const jwks = await issuerKeys(c);
    sts = await startSts({ jwks, issuer: c.serviceAccountIssuer, audience: STS_AUDIENCE, roleArn: ROLE, keys: { accessKeyId: s3.accessKeyId, secretAccessKey: s3.secretAccessKey } });
    const base = { kind: "s3", region: s3.region, namespaces: ["ml"], source: "webIdentity", roleArn: ROLE, stsEndpoint: sts.endpoint };
    creds = createCredentials(
      credentialsSchema.parse([
        { ...base, name: "irsa", match: { host: s3.host, pathPrefix: "/models/", scheme: "http" }, tokenFile: join(dir, "irsa", "token") },
        { ...base, name: "irsa-wrong-aud", match: { host: s3.host, pathPrefix: "/other/", scheme: "http" }, tokenFile: join(dir, "irsa", "wrong-audience") },
      ]),
      { pollMs: 0 },
    );
  }, 600_000);

  afterAll(async () => {
    if (savedEndpoint === undefined) delete process.env.AWS_ENDPOINT_URL_STS;
    else process.env.AWS_ENDPOINT_URL_STS = savedEndpoint;
    creds?.close();
    await sts?.close();
    await s3?.close();
    if (api) await deleteNamespaces(api, [NS]);
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  const get = (path: string, headers: Record<string, string> = {}) => originFetch(`${s3.endpoint}${path}`, (r) => creds.authorize(r), headers);

  it("the token verifies at the stand-in (issuer, audience, signature by the API server's key); its keys sign GETs that versitygw accepts, exchanged once", async () => {
    expect(await get("/models/llama/w.bin")).toMatchObject({ status: 200, body: "weights via web identity" });
    expect(await get("/models/llama/w.bin", { range: "bytes=0-6" })).toMatchObject({ status: 206, body: "weights" });
    const ok = sts.calls.filter((x) => x.roleSessionName === "cache-io-irsa");
    expect(ok).toEqual([{ roleArn: ROLE, roleSessionName: "cache-io-irsa", subject: `system:serviceaccount:${NS}:node-cache` }]);
  });

  it("a token for another audience is refused by STS, and the error says so and names the credential", async () => {
    const err = await get("/other/llama/w.bin").catch((e: Error) => e);
    expect(err).toMatchObject({ name: "SecretMaterialError", status: 502 });
    expect(String(err)).toMatch(/credential irsa-wrong-aud: cannot sign the request: .*Incorrect token audience/);
    expect(sts.calls.find((x) => x.roleSessionName === "cache-io-irsa-wrong-aud")?.error).toBe("Incorrect token audience");
  });
});

describe("credentials[].stsEndpoint", () => {
  it("is refused with source: secret, and must be a URL without a path, naming the field", () => {
    const entry = (extra: string) => `credentials: [{name: b, kind: s3, region: us-east-1, match: {host: s3.example.com}, namespaces: [ml], ${extra}}]`;
    const errors = (yaml: string) => {
      const r = parsePolicy(yaml);
      return r.ok ? [] : r.errors;
    };
    expect(errors(entry("secretDir: /s, stsEndpoint: https://sts.example.com"))).toEqual([expect.stringMatching(/^credentials\.0\.stsEndpoint: is used only with source: webIdentity or default/)]);
    expect(errors(entry("source: webIdentity, stsEndpoint: https://sts.example.com/path"))).toEqual([expect.stringMatching(/^credentials\.0\.stsEndpoint: must be an http\(s\) URL without a path/)]);
    expect(errors(entry("source: webIdentity, stsEndpoint: https://sts.eu-west-1.amazonaws.com"))).toEqual([]);
  });
});
