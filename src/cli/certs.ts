// `cache-io certs` (write a CA + serving cert, print the caBundle) and `cache-io certs
// install` (the in-cluster bootstrap the Job and CronJob run).
import { KubeConfig } from "@kubernetes/client-node";
import { resolve } from "node:path";
import { caBundleBase64, generateBundle, serviceDnsNames, writeBundle } from "../certs/generate.js";
import { installCerts } from "../certs/install.js";
import { ENTRIES } from "../deploy/webhook-config.js";

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

function dnsLabel(flag: string, value: string): string {
  if (value.length > 63 || !DNS_LABEL.test(value)) throw new Error(`${flag} "${value}" is not a DNS-1123 label (lowercase letters, digits and '-', at most 63)`);
  return value;
}

function days(flag: string, value: string, min: number): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > 3650) throw new Error(`${flag} "${value}" must be a whole number of days from ${min} to 3650`);
  return n;
}

export async function generate(opts: { out: string; service: string; namespace: string; days: string }): Promise<void> {
  const service = dnsLabel("--service", opts.service);
  const namespace = dnsLabel("--namespace", opts.namespace);
  const dnsNames = serviceDnsNames(service, namespace);
  const bundle = await generateBundle({ dnsNames, days: days("--days", opts.days, 1) });
  writeBundle(opts.out, bundle);
  const caBundle = caBundleBase64(bundle);
  const dir = resolve(opts.out);
  // stdout carries only the caBundle, so `CA=$(cache-io certs ...)` works; guidance goes to stderr.
  process.stdout.write(`${caBundle}\n`);
  const patch = JSON.stringify(ENTRIES.map((_, i) => ({ op: "add", path: `/webhooks/${i}/clientConfig/caBundle`, value: caBundle })));
  process.stderr.write(
    [
      `Wrote ca.crt, ca.key, tls.crt, tls.key to ${dir} for ${dnsNames[0]} (valid ${opts.days} days).`,
      `The line on stdout is the caBundle (base64 of ca.crt). To use these by hand instead of the cert Job:`,
      `  kubectl -n ${namespace} create secret generic cache-io-webhook-tls --type=kubernetes.io/tls \\`,
      `    --from-file=tls.crt=${dir}/tls.crt --from-file=tls.key=${dir}/tls.key --from-file=ca.crt=${dir}/ca.crt`,
      `  kubectl patch mutatingwebhookconfiguration cache-io --type=json -p '${patch}'`,
      ``,
    ].join("\n"),
  );
}

export async function install(opts: { namespace: string; service: string; secret: string; webhookConfig: string; days: string; renewBefore: string }): Promise<void> {
  const validity = days("--days", opts.days, 2);
  const renewBeforeDays = days("--renew-before", opts.renewBefore, 1);
  if (renewBeforeDays >= validity) throw new Error(`--renew-before (${renewBeforeDays}) must be less than --days (${validity}), or every run would renew`);
  const kc = new KubeConfig();
  kc.loadFromDefault();
  const result = await installCerts(kc, {
    namespace: dnsLabel("--namespace", opts.namespace),
    service: dnsLabel("--service", opts.service),
    secret: opts.secret,
    webhookConfig: opts.webhookConfig,
    days: validity,
    renewBeforeDays,
  });
  process.stdout.write(`cache-io: Secret ${opts.namespace}/${opts.secret} ${result.action}; caBundle set on ${result.patchedWebhooks} webhook(s) of ${opts.webhookConfig}\n`);
}
