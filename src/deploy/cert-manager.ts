// The cert-manager alternative to the cert Job: a self-signed root, a CA Issuer, and
// the serving Certificate whose Secret the webhook mounts. cert-manager's cainjector
// fills the caBundle (annotation added by deploy/components/cert-manager).
import { serviceDnsNames } from "../certs/generate.js";
import { NAMES, NAMESPACE, labels } from "./names.js";

interface CrdObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace: string; labels: Record<string, string> };
  spec: Record<string, unknown>;
}

const API = "cert-manager.io/v1";

function object(kind: string, name: string, namespace: string, spec: Record<string, unknown>): CrdObject {
  return { apiVersion: API, kind, metadata: { name, namespace, labels: labels("certs") }, spec };
}

export const CA_INJECT_ANNOTATION = "cert-manager.io/inject-ca-from";
/** `<namespace>/<Certificate name>` for cainjector. */
export const caInjectFrom = (namespace: string = NAMESPACE) => `${namespace}/${NAMES.webhook}`;

export function certManagerObjects(namespace: string = NAMESPACE): CrdObject[] {
  const selfSigned = `${NAMES.caIssuer}-selfsigned`;
  return [
    object("Issuer", selfSigned, namespace, { selfSigned: {} }),
    object("Certificate", NAMES.caIssuer, namespace, {
      isCA: true,
      commonName: "cache-io-webhook-ca",
      secretName: NAMES.caIssuer,
      duration: "17520h", // 2 years; serving certs renew well inside it
      privateKey: { algorithm: "ECDSA", size: 256 },
      issuerRef: { kind: "Issuer", name: selfSigned },
    }),
    object("Issuer", NAMES.caIssuer, namespace, { ca: { secretName: NAMES.caIssuer } }),
    object("Certificate", NAMES.webhook, namespace, {
      secretName: NAMES.tlsSecret,
      dnsNames: serviceDnsNames(NAMES.webhook, namespace),
      duration: "8760h",
      renewBefore: "720h",
      privateKey: { algorithm: "ECDSA", size: 256, rotationPolicy: "Always" },
      usages: ["server auth", "digital signature", "key encipherment"],
      issuerRef: { kind: "Issuer", name: NAMES.caIssuer },
    }),
  ];
}
