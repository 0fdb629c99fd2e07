// One autocannon run over HTTPS that verifies the server's certificate against a CA
// (autocannon forces rejectUnauthorized: false, so verification is checked by hand),
// checks every response body, and samples the server's RSS meanwhile.
import autocannon from "autocannon";
import { checkServerIdentity, type PeerCertificate } from "node:tls";
import { sampleRss } from "./rss.js";

export interface LoadTarget {
  name: string;
  port: number;
  pid: number;
  path: string;
}

export interface LoadOptions {
  ca: string;
  body: string;
  /** Every response must be exactly this. */
  expect: string;
  seconds: number;
  connections: number;
  /** Requests per second over all connections; unset: as fast as the server answers. */
  overallRate?: number;
}

export interface LoadRun {
  target: string;
  reviewsPerSec: number;
  requests: number;
  p50: number;
  p99: number;
  p999: number;
  maxMs: number;
  errors: number;
  non2xx: number;
  mismatches: number;
  rssMaxBytes: number;
  hwmBytes: number;
}

/**
 * autocannon passes our tlsOptions to tls.connect but then sets rejectUnauthorized:
 * false. Node still verifies the chain against `ca` and calls checkServerIdentity only
 * when it verified, so counting those calls against the connections made tells whether
 * every connection was to the server holding the CA-signed cert.
 */
function verifiedTls(ca: string) {
  let verified = 0;
  let clients = 0;
  return {
    tlsOptions: {
      ca,
      checkServerIdentity: (host: string, cert: PeerCertificate) => {
        const err = checkServerIdentity(host, cert);
        if (!err) verified++;
        return err;
      },
    },
    setupClient: () => void clients++,
    check(target: string) {
      if (verified < clients) throw new Error(`${target}: only ${verified} of ${clients} TLS connections verified against the CA; refusing to report`);
    },
  };
}

export async function load(target: LoadTarget, o: LoadOptions): Promise<LoadRun> {
  const tls = verifiedTls(o.ca);
  const rss = sampleRss(target.pid, 100);
  const r = await autocannon({
    url: `https://127.0.0.1:${target.port}${target.path}`,
    servername: "localhost",
    method: "POST",
    headers: { "content-type": "application/json" },
    body: o.body,
    expectBody: o.expect,
    connections: o.connections,
    duration: o.seconds,
    timeout: 10,
    ...(o.overallRate ? { overallRate: o.overallRate } : {}),
    tlsOptions: tls.tlsOptions,
    setupClient: tls.setupClient,
  });
  const mem = rss.stop();
  tls.check(target.name);
  const bad = r.errors + r.non2xx + r.mismatches;
  if (bad > 0) throw new Error(`${target.name}: ${r.errors} errors, ${r.non2xx} non-2xx, ${r.mismatches} wrong bodies under load`);
  return {
    target: target.name,
    reviewsPerSec: r.requests.total / r.duration,
    requests: r.requests.total,
    p50: r.latency.p50,
    p99: r.latency.p99,
    p999: r.latency.p99_9,
    maxMs: r.latency.max,
    errors: r.errors,
    non2xx: r.non2xx,
    mismatches: r.mismatches,
    rssMaxBytes: mem.max,
    hwmBytes: mem.hwm,
  };
}
