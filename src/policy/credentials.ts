// Policy for private origins (`credentials`): which origins get which credential, and
// which namespaces may use it. The secret material is never in the policy: it is read
// from files (a mounted Secret) or from the node cache's workload identity.
import { z } from "zod";

const hostPattern = z
  .string()
  .regex(/^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i, "must be a host name or `*.domain`, optionally with :port");

const absDir = z.string().regex(/^\/[^\0]*$/, "must be an absolute path");

const common = {
  /** Names the credential in logs, metrics and messages. */
  name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label").max(63),
  match: z.strictObject({
    host: hostPattern,
    pathPrefix: z.string().regex(/^\//, "must start with /").optional(),
    /** Credentials go over https only, unless the platform team says http (a trusted network, tests). */
    scheme: z.enum(["https", "http"]).default("https"),
  }),
  /** Namespaces whose pods may have files fetched with this credential (and read them once cached). */
  namespaces: z.array(z.string().min(1)).min(1),
};

/** Directory of the mounted Secret holding the material (re-read when it changes). */
const secretDir = absDir;

const bearer = z.strictObject({ ...common, kind: z.literal("bearer"), secretDir });
const basic = z.strictObject({ ...common, kind: z.literal("basic"), secretDir });
const header = z.strictObject({ ...common, kind: z.literal("header"), secretDir });

const s3 = z.strictObject({
  ...common,
  kind: z.literal("s3"),
  region: z.string().regex(/^[a-z0-9-]+$/, "must be a region name such as eu-west-1 (S3-compatible stores: us-east-1 unless they say otherwise)"),
  /** secret: keys from secretDir; webIdentity: IRSA's token file; default: the AWS SDK's chain (env, Pod Identity, instance role). */
  source: z.enum(["secret", "webIdentity", "default"], { error: "must be secret, webIdentity or default" }).default("secret"),
  secretDir: absDir.optional(),
  /** webIdentity only; default: the AWS_ROLE_ARN and AWS_WEB_IDENTITY_TOKEN_FILE that IRSA sets. */
  roleArn: z.string().regex(/^arn:[a-z-]+:iam::\d{12}:role\/\S+$/, "must be an IAM role ARN").optional(),
  tokenFile: absDir.optional(),
  /** webIdentity and default: the STS endpoint (a regional or VPC endpoint, an S3-compatible store's STS); default: the SDK's (AWS_ENDPOINT_URL_STS, else STS of the region). */
  stsEndpoint: z.string().regex(/^https?:\/\/[^\s/?#]+\/?$/, "must be an http(s) URL without a path, such as https://sts.eu-west-1.amazonaws.com").optional(),
});

const azure = z.strictObject({
  ...common,
  kind: z.literal("azure"),
  accountName: z.string().regex(/^[a-z0-9]{3,24}$/, "must be a storage account name (3-24 lowercase letters and digits)"),
  source: z
    .enum(["sharedKey", "sas"], { error: "must be sharedKey (file account-key) or sas (file sas-token); workload identity is not supported yet" })
    .default("sharedKey"),
  secretDir,
});

const gcs = z.strictObject({
  ...common,
  kind: z.literal("gcs"),
  /** serviceAccountKey: file key.json in secretDir; workloadIdentity: Application Default Credentials (GKE metadata server, GOOGLE_APPLICATION_CREDENTIALS). */
  source: z.enum(["serviceAccountKey", "workloadIdentity"], { error: "must be serviceAccountKey (file key.json) or workloadIdentity" }).default("serviceAccountKey"),
  secretDir: absDir.optional(),
});

const KINDS = "bearer, basic, header, s3, azure, gcs";

export const credentialSchema = z
  .discriminatedUnion("kind", [bearer, basic, header, s3, azure, gcs], {
    error: (iss) => (iss.code === "invalid_union" ? `kind must be one of ${KINDS}` : undefined),
  })
  .superRefine((c, ctx) => {
    if (c.kind === "gcs") {
      if (c.source === "serviceAccountKey" && !c.secretDir) ctx.addIssue({ code: "custom", path: ["secretDir"], message: "is required with source: serviceAccountKey (file key.json)" });
      if (c.source === "workloadIdentity" && c.secretDir) ctx.addIssue({ code: "custom", path: ["secretDir"], message: "is not used with source: workloadIdentity" });
      return;
    }
    if (c.kind !== "s3") return;
    if (c.source === "secret" && !c.secretDir) ctx.addIssue({ code: "custom", path: ["secretDir"], message: "is required with source: secret (files access-key-id, secret-access-key)" });
    if (c.source !== "secret" && c.secretDir) ctx.addIssue({ code: "custom", path: ["secretDir"], message: `is used only with source: secret, not ${c.source}` });
    if (c.source === "secret" && c.stsEndpoint) ctx.addIssue({ code: "custom", path: ["stsEndpoint"], message: "is used only with source: webIdentity or default (static keys need no STS)" });
    if (c.source !== "webIdentity" && (c.roleArn || c.tokenFile)) {
      ctx.addIssue({ code: "custom", path: [c.roleArn ? "roleArn" : "tokenFile"], message: "is used only with source: webIdentity" });
    }
  });

export const credentialsSchema = z
  .array(credentialSchema)
  .default([])
  .superRefine((list, ctx) => {
    const seen = new Set<string>();
    list.forEach((c, i) => {
      if (seen.has(c.name)) ctx.addIssue({ code: "custom", path: [i, "name"], message: `"${c.name}" is used by two credentials; names must be unique` });
      seen.add(c.name);
    });
  });
export type Credential = z.output<typeof credentialSchema>;
export type CredentialKind = Credential["kind"];
