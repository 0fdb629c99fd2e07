// The node cache's Prometheus metrics, in a registry of its own (not prom-client's
// global one), plus the process default metrics.
import { Counter, Gauge, Registry, collectDefaultMetrics } from "prom-client";
import type { FailReason } from "./errors.js";

export interface GaugeSources {
  fillsInProgress(): number;
  diskUsed(): number;
  diskBudget(): number;
}

export class CacheMetrics {
  readonly registry = new Registry();
  readonly hits: Counter;
  readonly misses: Counter;
  readonly coalesced: Counter;
  readonly originBytes: Counter;
  readonly servedBytes: Counter;
  readonly evictions: Counter;
  readonly fillErrors: Counter<"reason">;
  readonly originRequests: Counter<"result">;

  constructor(sources: GaugeSources) {
    const registers = [this.registry];
    const counter = (name: string, help: string) => new Counter({ name: `cache_io_cache_${name}`, help, registers });
    this.hits = counter("hits_total", "Requests answered from a complete cached file without waiting for the origin");
    this.misses = counter("misses_total", "Requests that had to wait for a fill (cold, changed or revalidated file)");
    this.coalesced = counter("coalesced_waiters_total", "Requests that joined a fill already in flight instead of starting one");
    this.originBytes = counter("origin_bytes_total", "Bytes received from origins");
    this.servedBytes = counter("served_bytes_total", "Bytes of cached files sent to clients");
    this.evictions = counter("evictions_total", "Files evicted to stay within the disk budget");
    this.fillErrors = new Counter({ name: "cache_io_cache_fill_errors_total", help: "Fills that failed, by reason", labelNames: ["reason"], registers });
    this.originRequests = new Counter({ name: "cache_io_cache_origin_requests_total", help: "HTTP requests to origins, by result", labelNames: ["result"], registers });
    const gauge = (name: string, help: string, read: () => number) =>
      new Gauge({ name: `cache_io_cache_${name}`, help, registers, collect() { this.set(read()); } });
    gauge("fills_in_progress", "Fills currently in flight", sources.fillsInProgress);
    gauge("disk_used_bytes", "Bytes of complete cached files plus space reserved by fills", sources.diskUsed);
    gauge("disk_budget_bytes", "The disk budget (policy cache.diskBudget)", sources.diskBudget);
    collectDefaultMetrics({ register: this.registry });
  }

  fillFailed(reason: FailReason): void {
    this.fillErrors.inc({ reason });
  }
}
