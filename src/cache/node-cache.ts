// The node cache's core: the index of complete files, whether a request is a hit or
// must wait for a fill (cold, due for revalidation, other sha256), and the wiring of
// store, fills, budget, in-use tracking and metrics; startup scan and pre-warm.
import type { KubeConfig } from "@kubernetes/client-node";
import { mkdir } from "node:fs/promises";
import { cacheOriginRules } from "../policy/load.js";
import type { Policy } from "../policy/schema.js";
import { logger, type Logger } from "../shared/log.js";
import { checkOriginUrl, type OriginRules } from "../shared/origin.js";
import { cacheKey, normalizeUrl } from "../shared/protocol.js";
import { CacheError } from "./errors.js";
import { Budget } from "./eviction.js";
import { Fill, Filler } from "./fill.js";
import { InUse } from "./in-use.js";
import { CacheMetrics } from "./metrics.js";
import type { Resolver } from "./origin.js";
import type { ObjectRequest } from "./request.js";
import { Store, type ObjectMeta } from "./store.js";

const DEFAULT_RETRY_BASE_MS = 1000;
const WRITABLE_CHECK_MS = 5000;

export interface NodeCacheOptions {
  root: string;
  /** The policy in force (read on every use: it hot-reloads). */
  policy(): Policy;
  /** This node's name; with `kubeConfig`, pods of this node are watched for files in use. */
  nodeName?: string;
  kubeConfig?: KubeConfig | null;
  /** Name resolution for origins (tests make names resolve to chosen addresses). */
  resolve?: Resolver;
  retryBaseMs?: number;
  /** How long a requested key counts as in use. */
  recentUseMs?: number;
  log?: Logger;
}

export type Acquired = { meta: ObjectMeta } | { fill: Fill; joined: boolean };

export class NodeCache {
  readonly store: Store;
  readonly metrics: CacheMetrics;
  readonly budget: Budget;
  readonly inUse: InUse;
  readonly filler: Filler;
  readonly log: Logger;
  #index = new Map<string, ObjectMeta>();
  #scanned = false;
  #writable = { ok: false, at: 0 };

  constructor(private readonly opts: NodeCacheOptions) {
    const policy = opts.policy;
    this.log = opts.log ?? logger("cache");
    this.store = new Store(opts.root);
    this.inUse = new InUse([opts.root, policy().cache.root], opts.recentUseMs ?? policy().cache.recentUseWindow);
    this.budget = new Budget({
      limit: () => policy().cache.diskBudget,
      inUse: (k) => this.inUse.has(k),
      blocked: () => this.inUse.blocked(),
      evict: (k) => this.#evict(k),
    });
    this.metrics = new CacheMetrics({
      fillsInProgress: () => this.filler.inFlight,
      diskUsed: () => this.budget.used(),
      diskBudget: () => policy().cache.diskBudget,
    });
    this.filler = new Filler({
      store: this.store,
      budget: this.budget,
      metrics: this.metrics,
      log: this.log,
      policy,
      origin: () => ({
        rules: this.rules(),
        connectTimeout: policy().cache.connectTimeout,
        idleTimeout: policy().cache.idleTimeout,
        ...(opts.resolve ? { resolve: opts.resolve } : {}),
        observe: (result) => this.metrics.originRequests.inc({ result }),
      }),
      retryBaseMs: opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
      onPublished: (meta) => this.#record(meta),
    });
  }

  /** Origin rules of the policy in force (the union of every namespace's allow-list). */
  rules(): OriginRules {
    return cacheOriginRules(this.opts.policy());
  }

  /** Scan the root (keep complete files, drop the rest), start the pod watch, pre-warm in the background. */
  async start(): Promise<void> {
    await mkdir(this.opts.root, { recursive: true, mode: 0o755 });
    const scan = await this.store.scan(Date.now(), this.opts.policy().cache.emptyDirGrace);
    for (const e of scan.entries) {
      this.#index.set(e.key, e);
      this.budget.add(e.key, e.size, Date.parse(e.validatedAt) || 0);
    }
    this.#scanned = true;
    this.log.info({ files: scan.entries.length, bytes: this.budget.used(), removed: scan.removed.length }, "startup scan done");
    const { kubeConfig, nodeName } = this.opts;
    if (kubeConfig && nodeName) {
      this.inUse.watchPods(kubeConfig, nodeName, this.log).catch((err: Error) => this.log.error({ err: err.message }, "pod watch did not start"));
    } else {
      this.log.info({ recentUseMs: this.opts.recentUseMs ?? this.opts.policy().cache.recentUseWindow }, "no pod watch (needs --node-name and a cluster config): files count as in use while recently requested");
    }
    this.budget.trim();
    void this.#prewarm();
  }

  stop(): void {
    this.filler.stop();
    this.inUse.stop();
  }

  /** Ready: the startup scan is done and the root is writable. */
  async ready(): Promise<{ ok: boolean; why: string }> {
    if (!this.#scanned) return { ok: false, why: "the startup scan of the cache root is not done" };
    if (Date.now() - this.#writable.at > WRITABLE_CHECK_MS) this.#writable = { ok: await this.store.writable(), at: Date.now() };
    return this.#writable.ok ? { ok: true, why: "" } : { ok: false, why: `the cache root ${this.opts.root} is not writable` };
  }

  current(key: string): ObjectMeta | undefined {
    return this.#index.get(key);
  }

  /** A complete fresh file for the request, or the fill to wait for (the caller is one of its waiters). */
  acquire(req: ObjectRequest): Acquired {
    this.inUse.touch(req.key);
    const meta = this.#index.get(req.key);
    const shaOk = !!meta && (!req.sha256 || req.sha256 === meta.sha256);
    if (meta && shaOk && (req.sha256 || !this.#due(meta))) {
      this.budget.touch(req.key);
      this.metrics.hits.inc();
      return { meta };
    }
    const r = this.filler.join(meta && shaOk ? { ...req, previous: meta } : req);
    this.metrics.misses.inc();
    if (r.joined) this.metrics.coalesced.inc();
    return r;
  }

  /** The outcome of a fill for one waiter: the file, or why not (also when it has another sha256 than asked). */
  async settle(fill: Fill, req: ObjectRequest): Promise<ObjectMeta> {
    const meta = await fill.promise;
    if (req.sha256 && meta.sha256 !== req.sha256) {
      throw new CacheError(502, "checksum", `${req.url} has sha256 ${meta.sha256}, not the ${req.sha256} that was asked for. Fix the #sha256= of this file in cache.io/files, or the file at the origin`);
    }
    return meta;
  }

  /** Wait for a complete file (filling it if needed); the wait ends with the fill, which fillTimeout bounds. */
  async complete(req: ObjectRequest): Promise<ObjectMeta> {
    const a = this.acquire(req);
    if ("meta" in a) return a.meta;
    try {
      return await this.settle(a.fill, req);
    } finally {
      a.fill.waiters--;
    }
  }

  #due(meta: ObjectMeta): boolean {
    return Date.now() - Date.parse(meta.validatedAt) >= this.opts.policy().cache.revalidateAfter;
  }

  #record(meta: ObjectMeta): void {
    this.#index.set(meta.key, meta);
    this.budget.touch(meta.key);
    this.budget.trim();
  }

  #evict(key: string): void {
    this.#index.delete(key);
    this.metrics.evictions.inc();
    this.log.info({ key }, "evicted");
    this.store.remove(key).catch((err: Error) => this.log.error({ key, err: err.message }, "eviction failed to remove files"));
  }

  async #prewarm(): Promise<void> {
    for (const raw of this.opts.policy().cache.prewarm) {
      try {
        const url = normalizeUrl(raw);
        const why = checkOriginUrl(new URL(url), this.rules());
        if (why) throw new CacheError(403, "policy", why);
        const meta = await this.complete({ key: cacheKey(url), url });
        this.log.info({ url, bytes: meta.size }, "pre-warmed");
      } catch (err) {
        this.log.warn({ url: raw, err: (err as Error).message }, "pre-warm failed");
      }
    }
  }
}
