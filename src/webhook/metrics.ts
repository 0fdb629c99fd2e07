// The webhook's Prometheus metrics, in a Registry it owns (not prom-client's global
// one), so several servers can run in one process. deploy/ alerts on these names.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { VERSION } from "../shared/version.js";

export type ReloadResult = "success" | "failure";

export interface WebhookMetrics {
  registry: Registry;
  reviews: Counter<"path" | "outcome" | "reason">;
  reviewDuration: Histogram<"path">;
  policyReloads: Counter<"result">;
  policyValid: Gauge;
  certExpiry: Gauge;
  certReloads: Counter<"result">;
}

/** Sub-millisecond (a skip) to a second (a huge pod under load). */
const DURATION_BUCKETS = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/**
 * prom-client's gauges of active handles, requests and resources also come as
 * `*_total` gauges, which promtool rejects (a `_total` suffix is for counters); the
 * plain gauges carry the same numbers.
 */
const REJECTED_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];

export function createWebhookMetrics(): WebhookMetrics {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  for (const name of REJECTED_DEFAULTS) registry.removeSingleMetric(name);
  const registers = [registry];
  new Gauge({ name: "cache_io_build_info", help: "Always 1; the labels say which build and component this is", labelNames: ["version", "component"] as const, registers })
    .labels({ version: VERSION, component: "webhook" })
    .set(1);
  const m: WebhookMetrics = {
    registry,
    reviews: new Counter({
      name: "cache_io_webhook_reviews_total",
      help: "AdmissionReviews answered, by URL path, outcome and reason",
      labelNames: ["path", "outcome", "reason"] as const,
      registers,
    }),
    reviewDuration: new Histogram({
      name: "cache_io_webhook_review_duration_seconds",
      help: "Time to answer an AdmissionReview, from parsed body to response",
      labelNames: ["path"] as const,
      buckets: DURATION_BUCKETS,
      registers,
    }),
    policyReloads: new Counter({
      name: "cache_io_policy_reloads_total",
      help: "Policy file loads, the first included, by result (a failure keeps the last good policy)",
      labelNames: ["result"] as const,
      registers,
    }),
    policyValid: new Gauge({ name: "cache_io_policy_valid", help: "1 when the last policy load attempt succeeded, else 0", registers }),
    certExpiry: new Gauge({
      name: "cache_io_webhook_cert_expiry_timestamp_seconds",
      help: "Expiry (notAfter) of the serving certificate in force, as a unix timestamp in seconds",
      registers,
    }),
    certReloads: new Counter({
      name: "cache_io_webhook_cert_reloads_total",
      help: "Serving certificate loads, the first included, by result (a failure keeps the old certificate)",
      labelNames: ["result"] as const,
      registers,
    }),
  };
  // Export both results from the start, so `increase(...{result="failure"}[5m])` works before the first failure.
  for (const result of ["success", "failure"] as const) {
    m.policyReloads.labels({ result }).inc(0);
    m.certReloads.labels({ result }).inc(0);
  }
  return m;
}

/** Read one counter or gauge sample back; undefined when the series does not exist. */
export async function sampleValue(metrics: WebhookMetrics, name: string, labels: Record<string, string> = {}): Promise<number | undefined> {
  const metric = metrics.registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, want]) => String((v.labels as Record<string, unknown>)[k]) === want));
  return hit?.value;
}
