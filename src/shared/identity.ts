// Identity between the injected init container and the node cache: the projected
// ServiceAccount token's audience, volume and path, the curl arguments that send it
// without a shell (curl >= 8.3), and the claims the cache reads from it.

/** The audience of the tokens the node cache accepts (and only it): no other service takes them. */
export const TOKEN_AUDIENCE = "cache.io/node-cache";

/** The projected token volume (under the reserved cache-io- prefix) and where the init container mounts it. */
export const TOKEN_VOLUME = "cache-io-token";
export const TOKEN_DIR = "/var/run/secrets/cache.io";
export const TOKEN_FILE = "token";
export const TOKEN_PATH = `${TOKEN_DIR}/${TOKEN_FILE}`;

/** The API server's minimum for a projected token's expirationSeconds. */
export const MIN_TOKEN_EXPIRATION_S = 600;

/** The curl version that has --variable and --expand-header. */
export const MIN_CURL = "8.3.0";

/**
 * curl reads the token file into a variable and expands it, trimmed, into the header
 * of every request of the command line; no shell, and `{{...}}` is not the kubelet's
 * `$(VAR)` syntax. An older curl stops at once with "unknown option" (the init
 * container fails, which shows in the pod's status). The token file as a curl variable:
 * a global option, read once for every group of a command line (--next).
 */
export function curlTokenVariable(path = TOKEN_PATH): string[] {
  return ["--variable", `TOKEN@${path}`];
}

/** The header that sends it: an option of each group of transfers (curl resets them at --next). */
export function curlTokenHeader(): string[] {
  return ["--expand-header", "Authorization: Bearer {{TOKEN:trim}}"];
}

/** The Kubernetes claims of a bound ServiceAccount token (`kubernetes.io` in the JWT). */
export interface KubernetesClaims {
  namespace?: string;
  serviceaccount?: { name?: string; uid?: string };
  pod?: { name?: string; uid?: string };
  node?: { name?: string; uid?: string };
}

export const KUBERNETES_CLAIM = "kubernetes.io";
