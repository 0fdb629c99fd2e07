// `promtool test rules` cases for every alert in deploy/monitoring/prometheus-rules.yaml:
// input series in promtool's expanding notation ('0+60x30': start 0, +60 per 1m step,
// 30 steps), an evaluation time, and the labels each firing alert must carry. `fires`
// must raise the alert; `quiet` is the nearest healthy (or merely different) situation,
// which must not.

export interface Series {
  series: string;
  values: string;
}

export interface AlertCase {
  fires: { input: Series[]; at: string; labels: Record<string, string>[] };
  quiet: { input: Series[]; at: string };
}

const W = 'namespace="cache-io",pod="cache-io-webhook-1",path="/mutate"';
const C = 'namespace="cache-io",pod="cache-io-cache-abcde"';
const reviews = (outcome: string, reason: string, values: string): Series => ({ series: `cache_io_webhook_reviews_total{${W},outcome="${outcome}",reason="${reason}"}`, values });
const bucket = (le: string, values: string): Series => ({ series: `cache_io_webhook_review_duration_seconds_bucket{${W},le="${le}"}`, values });
const rejections = (name: string, errorType: string): Series => ({
  series: `apiserver_admission_webhook_rejection_count{name="${name}",type="admit",operation="CREATE",error_type="${errorType}",rejection_code="0"}`,
  values: "0+6x30",
});
const buildInfo = (pod: string, version: string): Series => ({ series: `cache_io_build_info{namespace="cache-io",pod="${pod}",version="${version}"}`, values: "1x120" });
const ns = { namespace: "cache-io" };
const nodePod = { namespace: "cache-io", pod: "cache-io-cache-abcde" };

export const ALERT_CASES: Record<string, AlertCase> = {
  CacheIoWebhookErrors: {
    // Every review answered 500: the case the old rule (malformed only) missed.
    fires: { input: [reviews("error", "internal", "0+60x30")], at: "20m", labels: [ns] },
    // Denials are the webhook doing its job, not errors.
    quiet: { input: [reviews("patched", "injected", "0+60x30"), reviews("denied", "invalid-files", "0+60x30"), reviews("error", "internal", "0x30")], at: "20m" },
  },
  CacheIoWebhookCallsFailing: {
    fires: { input: [rejections("mount.files.cache.io", "calling_webhook_error")], at: "15m", labels: [{}] },
    // A denial by cache-io (no_error) and another webhook's outage are not this alert.
    quiet: { input: [rejections("copy.files.cache.io", "no_error"), rejections("validate.kyverno.svc", "calling_webhook_error")], at: "15m" },
  },
  CacheIoWebhookSlow: {
    fires: { input: [bucket("0.1", "0x40"), bucket("0.5", "0x40"), bucket("1", "0+10x40"), bucket("+Inf", "0+10x40")], at: "30m", labels: [ns] },
    quiet: { input: [bucket("0.1", "0+10x40"), bucket("0.5", "0+10x40"), bucket("1", "0+10x40"), bucket("+Inf", "0+10x40")], at: "30m" },
  },
  CacheIoWebhookCertExpiring: {
    // promtool's clock starts at 0: an expiry 7 days after that is 7 days away.
    fires: { input: [{ series: `cache_io_webhook_cert_expiry_timestamp_seconds{${W}}`, values: `${7 * 86400}x180` }], at: "2h", labels: [ns] },
    quiet: { input: [{ series: `cache_io_webhook_cert_expiry_timestamp_seconds{${W}}`, values: `${60 * 86400}x180` }], at: "2h" },
  },
  CacheIoPolicyInvalid: {
    // One component (here a node cache) saw the bad edit.
    fires: { input: [{ series: `cache_io_policy_valid{${W}}`, values: "1x20" }, { series: `cache_io_policy_valid{${C}}`, values: "0x20" }], at: "10m", labels: [ns] },
    quiet: { input: [{ series: `cache_io_policy_valid{${W}}`, values: "1x20" }, { series: `cache_io_policy_valid{${C}}`, values: "1x20" }], at: "10m" },
  },
  CacheIoVersionSkew: {
    fires: { input: [buildInfo("cache-io-webhook-1", "0.1.0"), buildInfo("cache-io-cache-abcde", "0.2.0")], at: "90m", labels: [ns] },
    quiet: { input: [buildInfo("cache-io-webhook-1", "0.2.0"), buildInfo("cache-io-cache-abcde", "0.2.0")], at: "90m" },
  },
  CacheIoFillErrors: {
    fires: { input: [{ series: `cache_io_cache_fill_errors_total{${C},reason="origin_status"}`, values: "0+1x30" }], at: "20m", labels: [{ ...nodePod, reason: "origin_status" }] },
    // Two failures in 15 minutes: a blip, retried by the init container.
    quiet: { input: [{ series: `cache_io_cache_fill_errors_total{${C},reason="origin_status"}`, values: "0x10 1 1 1 1 1 2x15" }], at: "20m" },
  },
  CacheIoStaleServed: {
    fires: { input: [{ series: `cache_io_cache_stale_served_total{${C}}`, values: "0+1x40" }], at: "30m", labels: [nodePod] },
    quiet: { input: [{ series: `cache_io_cache_stale_served_total{${C}}`, values: "5x40" }], at: "30m" },
  },
  CacheIoDownloadsRefused: {
    fires: { input: [{ series: `cache_io_cache_downloads_refused_total{${C},reason="max_downloads_per_client"}`, values: "0+5x40" }], at: "30m", labels: [{ ...nodePod, reason: "max_downloads_per_client" }] },
    quiet: { input: [{ series: `cache_io_cache_downloads_refused_total{${C},reason="max_downloads_per_client"}`, values: "0+0.5x40" }], at: "30m" },
  },
  CacheIoDiskOverBudget: {
    fires: { input: [{ series: `cache_io_cache_disk_used_bytes{${C}}`, values: "96x60" }, { series: `cache_io_cache_disk_budget_bytes{${C}}`, values: "100x60" }], at: "45m", labels: [nodePod] },
    quiet: { input: [{ series: `cache_io_cache_disk_used_bytes{${C}}`, values: "90x60" }, { series: `cache_io_cache_disk_budget_bytes{${C}}`, values: "100x60" }], at: "45m" },
  },
};
