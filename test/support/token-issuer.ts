// A ServiceAccount token issuer on loopback for node cache tests: OIDC discovery and
// JWKS over HTTP (read through a kubeconfig, as the cache reads the API server's), keys
// the test holds, and tokens minted with the claims the API server puts in bound tokens.
// The real API server's own tokens: test/cluster/identity.test.ts, peer-server.test.ts.
import { KubeConfig } from "@kubernetes/client-node";
import { exportJWK, generateKeyPair, SignJWT, type JWK } from "jose";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { TOKEN_AUDIENCE } from "../../src/shared/identity.js";

export const ISS = "https://issuer.test.local";
export interface Issuer {
  url: string;
  jwksGets: number;
  discoveryGets: number;
  down: boolean;
  keys: JWK[];
  close(): Promise<void>;
}

export async function startIssuer(): Promise<Issuer> {
  const state = { jwksGets: 0, discoveryGets: 0, down: false, keys: [] as JWK[] };
  const server: Server = createServer((req, res) => {
    if (req.headers.authorization !== "Bearer cache-own-token") return void res.writeHead(401).end();
    if (req.url === "/.well-known/openid-configuration") state.discoveryGets++;
    if (state.down) return void res.writeHead(500).end("down");
    if (req.url === "/.well-known/openid-configuration") return void res.end(JSON.stringify({ issuer: ISS, jwks_uri: `${ISS}/openid/v1/jwks` }));
    if (req.url === "/openid/v1/jwks") {
      state.jwksGets++;
      return void res.end(JSON.stringify({ keys: state.keys }));
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  return Object.assign(state, { url, close: () => new Promise<void>((r) => server.close(() => r())) });
}

export function kubeconfigFor(server: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [{ name: "c", server, skipTLSVerify: true /* plain http on loopback: the client library wants this said */ }],
    users: [{ name: "cache", token: "cache-own-token" }],
    contexts: [{ name: "c", cluster: "c", user: "cache" }],
    currentContext: "c",
  });
  return kc;
}

export type Key = { kid: string; privateKey: Awaited<ReturnType<typeof generateKeyPair>>["privateKey"]; jwk: JWK };
export async function newKey(kid: string): Promise<Key> {
  const { privateKey, publicKey } = await generateKeyPair("RS256", { extractable: true });
  return { kid, privateKey, jwk: { ...(await exportJWK(publicKey)), kid, alg: "RS256", use: "sig" } };
}

export interface Mint { ns?: string; sa?: string; node?: string | null; aud?: string; expIn?: number; iss?: string; key: Key }

/** A ServiceAccount token as the API server would issue it for a pod (bound to node `node`; null: no node claim). */
export function mintToken(o: Mint): Promise<string> {
  const ns = o.ns ?? "team-a";
  const sa = o.sa ?? "default";
  const claims = {
    namespace: ns,
    serviceaccount: { name: sa, uid: "sa-uid" },
    pod: { name: "app-1", uid: "pod-uid" },
    ...(o.node === null ? {} : { node: { name: o.node ?? "node-a", uid: "node-uid" } }),
  };
  const now = Math.floor(Date.now() / 1000);
  return new SignJWT({ "kubernetes.io": claims })
    .setProtectedHeader({ alg: "RS256", kid: o.key.kid })
    .setIssuer(o.iss ?? ISS)
    .setAudience(o.aud ?? TOKEN_AUDIENCE)
    .setSubject(`system:serviceaccount:${ns}:${sa}`)
    .setIssuedAt(now - 60)
    .setExpirationTime(now + (o.expIn ?? 600))
    .sign(o.key.privateKey);
}
