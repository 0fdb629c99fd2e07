// The part of autocannon 8's programmatic API the benchmarks use (it ships no types).
declare module "autocannon" {
  import type { ConnectionOptions } from "node:tls";

  interface Histogram {
    average: number;
    mean: number;
    stddev: number;
    min: number;
    max: number;
    total: number;
    p50: number;
    p90: number;
    p99: number;
    p99_9: number;
    p99_99: number;
  }

  interface Result {
    requests: Histogram;
    latency: Histogram;
    throughput: Histogram;
    duration: number;
    errors: number;
    timeouts: number;
    mismatches: number;
    non2xx: number;
    connections: number;
  }

  interface Options {
    url: string;
    method?: string;
    headers?: Record<string, string>;
    body?: string | Buffer;
    connections?: number;
    pipelining?: number;
    duration?: number;
    amount?: number;
    overallRate?: number;
    timeout?: number;
    servername?: string;
    tlsOptions?: ConnectionOptions;
    expectBody?: string;
    setupClient?: (client: unknown) => void;
  }

  function autocannon(opts: Options): Promise<Result>;
  export default autocannon;
  export type { Options, Result, Histogram };
}
