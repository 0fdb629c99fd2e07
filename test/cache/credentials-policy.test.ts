// The `credentials:` policy section: each kind's fields, and unsupported combinations
// refused at load with a message naming the field.
import { describe, expect, it } from "vitest";
import { parsePolicy } from "../../src/policy/load.js";

const entry = (fields: string) => `credentials: [{name: a, match: {host: x.example.com}, namespaces: [n], ${fields}}]`;

describe("credentials policy", () => {
  it.each([
    ["kind: oss, secretDir: /s", "credentials.0.kind: kind must be one of bearer, basic, header, s3, azure, gcs"],
    ["kind: gcs", "credentials.0.secretDir: is required with source: serviceAccountKey (file key.json)"],
    ["kind: gcs, source: workloadIdentity, secretDir: /s", "credentials.0.secretDir: is not used with source: workloadIdentity"],
    ["kind: s3, region: eu-west-1", "credentials.0.secretDir: is required with source: secret (files access-key-id, secret-access-key)"],
    ["kind: s3, region: eu-west-1, source: default, secretDir: /s", "credentials.0.secretDir: is used only with source: secret, not default"],
    ["kind: s3, region: eu-west-1, secretDir: /s, roleArn: 'arn:aws:iam::123456789012:role/r'", "credentials.0.roleArn: is used only with source: webIdentity"],
    ["kind: s3, region: EU, secretDir: /s", "credentials.0.region: must be a region name"],
    ["kind: azure, accountName: acct, source: workloadIdentity, secretDir: /s", "credentials.0.source: must be sharedKey (file account-key) or sas (file sas-token); workload identity is not supported yet"],
    ["kind: bearer, secretDir: /s, region: eu-west-1", "credentials.0: unknown field(s) region"],
    ["kind: bearer, secretDir: relative", "credentials.0.secretDir: must be an absolute path"],
  ])("%s is refused", (fields, message) => {
    const r = parsePolicy(entry(fields));
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.errors.join("\n")).toContain(message);
  });

  it("names must be unique; https is the default scheme; each kind's own fields are accepted", () => {
    const dup = parsePolicy(`credentials: [{name: a, match: {host: x.com}, namespaces: [n], kind: bearer, secretDir: /s}, {name: a, match: {host: y.com}, namespaces: [n], kind: basic, secretDir: /t}]`);
    expect(dup.ok || dup.errors).toContain('credentials.1.name: "a" is used by two credentials; names must be unique');
    const ok = parsePolicy(`credentials:
  - {name: hf, match: {host: huggingface.co}, namespaces: [ml], kind: bearer, secretDir: /s/hf}
  - {name: irsa, match: {host: s3.eu-west-1.amazonaws.com, pathPrefix: /d/}, namespaces: [ml], kind: s3, region: eu-west-1, source: webIdentity}
  - {name: blob, match: {host: acct.blob.core.windows.net}, namespaces: [ml], kind: azure, accountName: acct, source: sas, secretDir: /s/blob}`);
    expect(ok.ok).toBe(true);
    if (ok.ok) expect(ok.policy.credentials.map((c) => [c.name, c.match.scheme])).toEqual([["hf", "https"], ["irsa", "https"], ["blob", "https"]]);
  });
});
