// The init container's identity: a projected ServiceAccount token for the node cache's
// audience, in a volume only the init container mounts (read-only), sent by curl.
import type { V1Volume, V1VolumeMount } from "@kubernetes/client-node";
import type { Policy } from "../policy/schema.js";
import { TOKEN_AUDIENCE, TOKEN_DIR, TOKEN_FILE, TOKEN_VOLUME, curlTokenHeader, curlTokenVariable } from "../shared/identity.js";

export function sendsToken(policy: Policy): boolean {
  return policy.identity.mode !== "off";
}

export function tokenVolumes(policy: Policy): V1Volume[] {
  if (!sendsToken(policy)) return [];
  return [{
    name: TOKEN_VOLUME,
    projected: { sources: [{ serviceAccountToken: { audience: TOKEN_AUDIENCE, expirationSeconds: policy.identity.tokenExpirationSeconds, path: TOKEN_FILE } }] },
  }];
}

export function tokenMounts(policy: Policy): V1VolumeMount[] {
  return sendsToken(policy) ? [{ name: TOKEN_VOLUME, mountPath: TOKEN_DIR, readOnly: true }] : [];
}

/** The curl options that send the token: the variable (global, once) and the header (per group of transfers). */
export function tokenCurlArgs(policy: Policy): { global: string[]; perGroup: string[] } {
  return sendsToken(policy) ? { global: curlTokenVariable(), perGroup: curlTokenHeader() } : { global: [], perGroup: [] };
}
