// Policy for private origins (`credentials`): which origins get which credential, and
// which namespaces may use it. The secret material is never in the policy: it is read
// from files (a mounted Secret) or from the node cache's workload identity.
import { z } from "zod";

const hostPattern = z
  .string()
  .regex(/^(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?$/i, "must be a host name or `*.domain`, optionally with :port");

export const credentialSchema = z.strictObject({
  /** Names the credential in logs, metrics and messages. */
  name: z.string().regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, "must be a DNS-1123 label").max(63),
  match: z.strictObject({ host: hostPattern, pathPrefix: z.string().regex(/^\//, "must start with /").optional() }),
  /** Namespaces whose pods may have files fetched with this credential (and read them once cached). */
  namespaces: z.array(z.string().min(1)).min(1),
  kind: z.enum(["bearer", "basic", "header"]),
  /** Directory of the mounted Secret holding the material (re-read when it changes). */
  secretDir: z.string().regex(/^\//, "must be an absolute path"),
});

export const credentialsSchema = z.array(credentialSchema).default([]);
export type Credential = z.output<typeof credentialSchema>;
