// A STAND-IN for AWS STS on loopback, for the web-identity (IRSA) tests: only
// AssumeRoleWithWebIdentity (the AWS query protocol, form-encoded POST, XML answers, as
// the AWS SDK's STS client speaks it). Like AWS with an OIDC identity provider, it
// VERIFIES the web-identity token before answering: its signature against the issuer's
// JWKS (with jose), the issuer, the audience and the expiry; the role must be the one
// configured. A valid token gets the keys the caller configured (e.g. versitygw's) and
// an expiry; an invalid one gets STS's error document (400
// InvalidIdentityToken, 403 AccessDenied) with the reason. Not AWS: no IAM policies, no
// trust-policy conditions beyond the role ARN, and no SessionToken in the answer: the
// keys are permanent ones (versitygw's), and versitygw refuses a session token paired
// with a permanent key. The STS call itself is unsigned, as with AWS for this action.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { createLocalJWKSet, errors, jwtVerify, type JSONWebKeySet } from "jose";

export interface StsOptions {
  /** The OIDC issuer's keys (the API server's /openid/v1/jwks) and its issuer URL. */
  jwks: JSONWebKeySet;
  issuer: string;
  /** The audience tokens must carry (IRSA: sts.amazonaws.com). */
  audience: string;
  /** The one role that may be assumed. */
  roleArn: string;
  /** What a valid token is exchanged for. */
  keys: { accessKeyId: string; secretAccessKey: string };
  /** Lifetime of the temporary credentials (default 1 h). */
  durationSeconds?: number;
}

export interface StsCall {
  roleArn: string;
  roleSessionName: string;
  /** The token's subject when it verified (system:serviceaccount:<ns>:<sa>), else undefined. */
  subject?: string;
  error?: string;
}

export interface Sts {
  endpoint: string;
  calls: StsCall[];
  close(): Promise<void>;
}

const NS = "https://sts.amazonaws.com/doc/2011-06-15/";
const MAX_BODY = 64 * 1024;

function errorXml(type: string, code: string, message: string): string {
  return `<ErrorResponse xmlns="${NS}"><Error><Type>${type}</Type><Code>${code}</Code><Message>${escape(message)}</Message></Error><RequestId>${randomBytes(8).toString("hex")}</RequestId></ErrorResponse>`;
}

function escape(s: string): string {
  return s.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
}

export async function startSts(o: StsOptions): Promise<Sts> {
  const keys = createLocalJWKSet(o.jwks);
  const calls: StsCall[] = [];
  const server = createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_BODY) return void res.writeHead(413).end();
      chunks.push(c as Buffer);
    }
    const form = new URLSearchParams(Buffer.concat(chunks).toString());
    const reply = (status: number, xml: string) => void res.writeHead(status, { "content-type": "text/xml" }).end(xml);
    if (req.method !== "POST" || form.get("Action") !== "AssumeRoleWithWebIdentity") {
      return reply(400, errorXml("Sender", "InvalidAction", `this STS stand-in implements only AssumeRoleWithWebIdentity, not ${form.get("Action")}`));
    }
    const call: StsCall = { roleArn: form.get("RoleArn") ?? "", roleSessionName: form.get("RoleSessionName") ?? "" };
    calls.push(call);
    try {
      const { payload } = await jwtVerify(form.get("WebIdentityToken") ?? "", keys, { issuer: o.issuer, audience: o.audience });
      call.subject = payload.sub;
    } catch (err) {
      const why = err instanceof errors.JWTClaimValidationFailed && err.claim === "aud" ? "Incorrect token audience" : (err as Error).message;
      call.error = why;
      return reply(400, errorXml("Sender", "InvalidIdentityToken", why));
    }
    if (call.roleArn !== o.roleArn) {
      call.error = "not authorized";
      return reply(403, errorXml("Sender", "AccessDenied", "Not authorized to perform sts:AssumeRoleWithWebIdentity"));
    }
    const expiration = new Date(Date.now() + (o.durationSeconds ?? 3600) * 1000).toISOString();
    const account = /::(\d{12}):/.exec(o.roleArn)?.[1] ?? "000000000000";
    const role = o.roleArn.split("/").pop();
    reply(200, `<AssumeRoleWithWebIdentityResponse xmlns="${NS}"><AssumeRoleWithWebIdentityResult>` +
      `<SubjectFromWebIdentityToken>${escape(call.subject ?? "")}</SubjectFromWebIdentityToken><Audience>${escape(o.audience)}</Audience>` +
      `<AssumedRoleUser><Arn>arn:aws:sts::${account}:assumed-role/${role}/${escape(call.roleSessionName)}</Arn><AssumedRoleId>AROA${randomBytes(8).toString("hex").toUpperCase()}:${escape(call.roleSessionName)}</AssumedRoleId></AssumedRoleUser>` +
      `<Credentials><AccessKeyId>${o.keys.accessKeyId}</AccessKeyId><SecretAccessKey>${o.keys.secretAccessKey}</SecretAccessKey>` +
      `<Expiration>${expiration}</Expiration></Credentials>` +
      `<Provider>${escape(o.issuer)}</Provider></AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>${randomBytes(8).toString("hex")}</RequestId></ResponseMetadata></AssumeRoleWithWebIdentityResponse>`);
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return {
    endpoint: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    calls,
    async close() {
      server.closeAllConnections();
      server.close();
      await once(server, "close");
    },
  };
}
