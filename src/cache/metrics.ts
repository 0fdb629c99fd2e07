// The node cache's Prometheus metrics, in a registry of its own (not prom-client's
// global one), plus the process default metrics (without the gauges whose names end in
// _total, which `promtool check metrics` rejects). Names are fixed: dashboards use them.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from "prom-client";
import { VERSION } from "../shared/version.js";
import type { FailReason } from "./errors.js";

export interface GaugeSources {
  fillsInProgress(): number;
  diskUsed(): number;
  diskBudget(): number;
  /** Ready peers known (the cluster tier); absent: no tier. */
  peers?(): number;
}

/** Default metrics that are gauges named like counters (nodejs_active_handles_total, ...). */
const MISNAMED_DEFAULTS = ["nodejs_active_handles_total", "nodejs_active_requests_total", "nodejs_active_resources_total"];
/** A small file from a local origin (a fraction of a second) to a large one over a slow link (an hour). */
const FILL_BUCKETS = [0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

export class CacheMetrics {
  readonly registry = new Registry();
  readonly hits: Counter;
  readonly misses: Counter;
  readonly coalesced: Counter;
  readonly originBytes: Counter;
  readonly servedBytes: Counter;
  readonly ensuredBytes: Counter;
  readonly evictions: Counter;
  readonly staleServed: Counter;
  readonly fillErrors: Counter<"reason">;
  readonly originRequests: Counter<"result">;
  readonly downloadsRefused: Counter<"reason">;
  readonly fillDuration: Histogram<"result">;
  readonly auth: Counter<"result">;
  readonly peerBytes: Counter<"direction">;
  readonly peerFailures: Counter<"peer" | "reason">;
  readonly peerRedirects: Counter<"kind">;
  readonly fillSources: Counter<"source">;
  readonly originAuthFailures: Counter<"credential">;
  readonly policyValid: Gauge;
  readonly policyReloads: Counter<"result">;

  constructor(sources: GaugeSources) {
    const registers = [this.registry];
    const counter = (name: string, help: string) => new Counter({ name: `cache_io_cache_${name}`, help, registers });
    this.hits = counter("hits_total", "Requests answered from a complete cached file without waiting for the origin");
    this.misses = counter("misses_total", "Requests that had to wait for a fill (cold, changed or revalidated file)");
    this.coalesced = counter("coalesced_waiters_total", "Requests that joined a fill already in flight instead of starting one");
    this.originBytes = counter("origin_bytes_total", "Bytes received from origins");
    this.servedBytes = counter("served_bytes_total", "Bytes of cached files sent to clients");
    this.ensuredBytes = counter("ensured_bytes_total", "Bytes of files handed to pods through /v1/ensure (what mount-mode pods read in place)");
    this.evictions = counter("evictions_total", "Files evicted to stay within the disk budget");
    this.staleServed = counter("stale_served_total", "Requests answered with a stale copy because the origin could not confirm it (within cache.maxStale)");
    this.fillErrors = new Counter({ name: "cache_io_cache_fill_errors_total", help: "Fills that failed, by reason", labelNames: ["reason"], registers });
    this.originRequests = new Counter({ name: "cache_io_cache_origin_requests_total", help: "HTTP requests to origins, by result", labelNames: ["result"], registers });
    this.downloadsRefused = new Counter({
      name: "cache_io_cache_downloads_refused_total",
      help: "Requests refused with 503 because a limit was reached, by the limit (max_downloads, max_downloads_per_client, max_fills, max_fills_per_host)",
      labelNames: ["reason"],
      registers,
    });
    this.auth = new Counter({ name: "cache_io_cache_auth_total", help: "Bearer tokens checked on file requests, by result (ok, refused: 401, error: keys unavailable)", labelNames: ["result"], registers });
    this.peerBytes = new Counter({ name: "cache_io_cache_peer_bytes_total", help: "Bytes exchanged with peer node caches, by direction (in: received for fills here, out: sent to peers)", labelNames: ["direction"], registers });
    this.peerFailures = new Counter({ name: "cache_io_cache_peer_failures_total", help: "Peer fetches that failed or were given up on, by peer node and reason", labelNames: ["peer", "reason"], registers });
    this.peerRedirects = new Counter({ name: "cache_io_cache_peer_redirects_total", help: "Peer answers that sent a fill on to other peers: busy (at cache.peers.fanout, naming the peers it serves) or not_present (a named peer without a copy)", labelNames: ["kind"], registers });
    this.fillSources = new Counter({ name: "cache_io_cache_fill_sources_total", help: "Fills completed, by where the bytes came from (origin, peer)", labelNames: ["source"], registers });
    this.originAuthFailures = new Counter({
      name: "cache_io_cache_origin_auth_failures_total",
      help: "Origin answers 401, 403 or 404 to a fill, by the credential that was sent (none: no credential matched)",
      labelNames: ["credential"],
      registers,
    });
    for (const direction of ["in", "out"]) this.peerBytes.labels({ direction }).inc(0);
    for (const kind of ["busy", "not_present"]) this.peerRedirects.labels({ kind }).inc(0);
    this.fillDuration = new Histogram({
      name: "cache_io_cache_fill_duration_seconds",
      help: "Time from the start of a fill to its end, by result (ok, unchanged, stale, gone, or the failure reason)",
      labelNames: ["result"],
      buckets: FILL_BUCKETS,
      registers,
    });
    this.policyValid = new Gauge({ name: "cache_io_policy_valid", help: "1 when the last policy load attempt succeeded, else 0", registers });
    this.policyReloads = new Counter({
      name: "cache_io_policy_reloads_total",
      help: "Policy file loads, the first included, by result (a failure keeps the last good policy)",
      labelNames: ["result"],
      registers,
    });
    for (const result of ["success", "failure"]) this.policyReloads.labels({ result }).inc(0);
    this.policyValid.set(1);
    new Gauge({ name: "cache_io_build_info", help: "The running build: version and component (always 1)", labelNames: ["version", "component"], registers }).set(
      { version: VERSION, component: "cache" },
      1,
    );
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name: `cache_io_cache_${name}`, help, registers, collect() { this.set(read()); } });
    gauge("fills_in_progress", "Fills currently in flight", sources.fillsInProgress);
    gauge("disk_used_bytes", "Bytes of complete cached files plus space reserved by fills", sources.diskUsed);
    gauge("disk_budget_bytes", "The disk budget (policy cache.diskBudget)", sources.diskBudget);
    gauge("peers", "Ready peer node caches known, this one included (0: no cluster tier)", () => sources.peers?.() ?? 0);
    collectDefaultMetrics({ register: this.registry });
    for (const name of MISNAMED_DEFAULTS) this.registry.removeSingleMetric(name);
  }

  fillFailed(reason: FailReason): void {
    this.fillErrors.inc({ reason });
  }

  /** Record a policy load attempt (errors empty: success). */
  policyLoaded(errors: string[]): void {
    this.policyReloads.inc({ result: errors.length ? "failure" : "success" });
    this.policyValid.set(errors.length ? 0 : 1);
  }
}
