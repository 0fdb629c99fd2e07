// The node cache's core: the index of complete files, whether a request is a hit or
// must wait for a fill (cold, due for revalidation, other sha256, changed on disk), and
// the wiring of store, fills, budget, in-use tracking, limits and metrics; startup scan,
// pre-warm, and eviction when a reloaded policy shrinks the budget.
import type { KubeConfig } from "@kubernetes/client-node";
import { mkdir } from "node:fs/promises";
import { cacheOriginRules, diskShareOf } from "../policy/load.js";
import type { Policy } from "../policy/schema.js";
import { logger, type Logger } from "../shared/log.js";
import { checkOriginUrl, type OriginRules } from "../shared/origin.js";
import { cacheKey, normalizeUrl } from "../shared/protocol.js";
import { CacheError } from "./errors.js";
import { Budget } from "./eviction.js";
import { Fill, Filler } from "./fill.js";
import { Access } from "./identity/access.js";
import type { IssuerOptions } from "./identity/issuer.js";
import { InUse } from "./in-use.js";
import { BufferPool, Slots, downloadRefusal } from "./limits.js";
import { CacheMetrics } from "./metrics.js";
import type { Resolver } from "./origin.js";
import { redact } from "./redact.js";
import type { PeerSettings } from "./peers/types.js";
import type { ObjectRequest } from "./request.js";
import { Store, type ObjectMeta } from "./store.js";

const DEFAULT_RETRY_BASE_MS = 1000;
const WRITABLE_CHECK_MS = 5000;
const POLICY_CHECK_MS = 1000;
const RETRY_AFTER_S = 5;
/** Large (1 MiB) read buffers out at once over all downloads: what stalled downloads can pin. */
const LARGE_READ_BUFFERS = 64;

export interface NodeCacheOptions {
  root: string;
  /** The policy in force (read on every use: it hot-reloads). */
  policy(): Policy;
  /** Why the policy file could not be loaded (non-empty: not ready, file requests get 503). */
  policyErrors?(): string[];
  /** This node's name; with `kubeConfig`, pods of this node are watched for files in use. */
  nodeName?: string;
  kubeConfig?: KubeConfig | null;
  /** Name resolution for origins (tests make names resolve to chosen addresses). */
  resolve?: Resolver;
  retryBaseMs?: number;
  /** How long a requested key counts as in use (default: the policy's cache.recentUseWindow). */
  recentUseMs?: number;
  /** How often a changed policy is looked for (budget shrink). */
  policyCheckMs?: number;
  log?: Logger;
  /** Where the callers' tokens are verified (the API server's issuer keys); default: kubeConfig. */
  identityKubeConfig?: KubeConfig | null;
  issuer?: IssuerOptions;
  /** The cluster tier (src/cache/peers/): fills ask the owning peer before the origin. */
  peers?: PeerSettings;
}

export type Acquired = { meta: ObjectMeta } | { fill: Fill; joined: boolean };

export class NodeCache {
  readonly store: Store;
  readonly metrics: CacheMetrics;
  readonly budget: Budget;
  readonly inUse: InUse;
  readonly filler: Filler;
  readonly downloads = new Slots();
  readonly readBuffers = new BufferPool(LARGE_READ_BUFFERS);
  readonly log: Logger;
  #index = new Map<string, ObjectMeta>();
  #verifying = new Map<string, Promise<boolean>>();
  #scanned = false;
  #writable = { ok: false, at: 0 };
  #policyTimer: NodeJS.Timeout | undefined;
  readonly #access: Access;

  constructor(private readonly opts: NodeCacheOptions) {
    const policy = opts.policy;

    this.log = opts.log ?? logger("cache");
    this.store = new Store(opts.root);
    const windowMs = () => opts.recentUseMs ?? policy().cache.recentUseWindow;
    this.inUse = new InUse([opts.root, policy().cache.root], { windowMs, maxKeys: () => policy().cache.recentUseMaxKeys });
    this.budget = new Budget({
      limit: () => policy().cache.diskBudget,
      mounted: (k) => this.inUse.mounted(k),
      recent: (k) => this.inUse.recent(k),
      recentShare: () => policy().cache.recentUseShare,
      recentWindow: () => `${Math.round(windowMs() / 1000)}s (cache.recentUseWindow)`,
      blocked: () => this.inUse.blocked(),
      evict: (k) => this.#evict(k),
      share: (ns) => diskShareOf(policy(), ns),
    });
    this.metrics = new CacheMetrics({
      fillsInProgress: () => this.filler.inFlight,
      diskUsed: () => this.budget.used(),
      diskBudget: () => policy().cache.diskBudget,
      ...(opts.peers ? { peers: () => opts.peers!.source.peers().length } : {}),
    });
    this.#access = new Access({ policy, metrics: this.metrics, nodeName: opts.nodeName, kubeConfig: opts.identityKubeConfig ?? opts.kubeConfig, issuer: opts.issuer });
    this.filler = new Filler({
      store: this.store,
      budget: this.budget,
      metrics: this.metrics,
      log: this.log,
      policy,
      origin: (req) => ({
        rules: this.#access.rulesFor(req.caller),
        connectTimeout: policy().cache.connectTimeout,
        idleTimeout: policy().cache.idleTimeout,
        ...(opts.resolve ? { resolve: opts.resolve } : {}),
        observe: (result) => this.metrics.originRequests.inc({ result }),
        authorize: (r) => this.#access.authorize(r, req),
        proxies: policy().cache.proxies,
      }),
      retryBaseMs: opts.retryBaseMs ?? DEFAULT_RETRY_BASE_MS,
      onPublished: (meta) => this.#record(meta),
      onGone: (meta) => this.#drop(meta.key),
      explain: (url, status) => this.#access.credentials().explain(url, status),
      ...(opts.peers ? { peers: opts.peers } : {}),
    });
  }

  /** The policy in force. */
  policy(): Policy {
    return this.opts.policy();
  }

  /** Origin rules of the policy in force (the union of every namespace's allow-list). */
  rules(): OriginRules {
    return cacheOriginRules(this.opts.policy());
  }

  /** Who may do what: callers' tokens, namespace rules, credentials, namespace fill quotas. */
  get access(): Access {
    return this.#access;
  }

  /** Why file requests cannot be served now (an invalid policy at start), or null. */
  policyProblem(): string | null {
    const errors = this.opts.policyErrors?.() ?? [];
    return errors.length ? `the policy file is invalid, so the node cache serves no files until it is fixed: ${errors.join("; ").replace(/\s*\n\s*/g, " ")}` : null;
  }

  /** Scan the root (keep complete files, drop the rest), start the pod watch, pre-warm in the background. */
  async start(): Promise<void> {
    await mkdir(this.opts.root, { recursive: true, mode: 0o755 });
    const scan = await this.store.scan(Date.now(), this.opts.policy().cache.emptyDirGrace);
    for (const e of scan.entries) {
      this.#index.set(e.key, e);
      this.budget.add(e.key, e.size, Date.parse(e.validatedAt) || 0, e.namespace);
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
    this.#watchPolicy();
    void this.#prewarm();
  }

  stop(): void {
    clearInterval(this.#policyTimer);
    this.filler.stop();
    this.inUse.stop();
    this.opts.peers?.source.stop();
  }

  /** Ready: a valid policy, the startup scan is done and the root is writable. */
  async ready(): Promise<{ ok: boolean; why: string }> {
    const problem = this.policyProblem();
    if (problem) return { ok: false, why: problem };
    const identity = this.#access.problem();
    if (identity) return { ok: false, why: identity };
    if (!this.#scanned) return { ok: false, why: "the startup scan of the cache root is not done" };
    if (Date.now() - this.#writable.at > WRITABLE_CHECK_MS) this.#writable = { ok: await this.store.writable(), at: Date.now() };
    return this.#writable.ok ? { ok: true, why: "" } : { ok: false, why: `the cache root ${this.opts.root} is not writable` };
  }

  current(key: string): ObjectMeta | undefined {
    return this.#index.get(key);
  }

  /** A download slot for `client` (503 past cache.maxDownloads / maxDownloadsPerClient); call the result to free it. */
  downloadSlot(client: string): () => void {
    const c = this.opts.policy().cache;
    const slot = this.downloads.acquire(client, { total: c.maxDownloads, perGroup: c.maxDownloadsPerClient });
    if ("release" in slot) return slot.release;
    this.metrics.downloadsRefused.inc({ reason: slot.reason === "total" ? "max_downloads" : "max_downloads_per_client" });
    throw downloadRefusal(slot, client, RETRY_AFTER_S);
  }

  /**
   * A complete fresh file whose bytes on disk are still the recorded ones, or the fill to
   * wait for (the caller is one of its waiters and must `leave()` it).
   */
  async acquire(req: ObjectRequest): Promise<Acquired> {
    for (let tries = 0; ; tries++) {
      const a = this.#acquire(req);
      if (!("meta" in a) || (await this.#intact(a.meta)) || tries >= 2) return a;
    }
  }

  #acquire(req: ObjectRequest): Acquired {
    // With identity required, only verified callers (and the cache's own pre-warm) pin files.
    if (req.caller || this.opts.policy().identity.mode !== "required" || (req as { prewarm?: boolean }).prewarm) this.inUse.touch(req.key);
    const meta = this.#index.get(req.key);
    // A hit is served only to a caller that may have the file's recorded URL, whoever filled it.
    if (meta && meta.url !== req.url) this.#access.check(req.caller, meta.url);
    const shaOk = !!meta && (!req.sha256 || req.sha256 === meta.sha256);
    if (meta && shaOk && (req.sha256 || !this.#due(meta))) {
      this.budget.touch(req.key);
      this.metrics.hits.inc();
      return { meta };
    }
    let r: { fill: Fill; joined: boolean };
    try {
      r = this.#access.startFill(req, () => this.filler.join(meta && shaOk ? { ...req, previous: meta } : req));
    } catch (err) {
      // At the fill caps, a due revalidation waits: the copy in hand is served meanwhile.
      if (!(meta && shaOk && err instanceof CacheError && err.reason === "busy")) throw err;
      this.metrics.hits.inc();
      return { meta };
    }
    this.metrics.misses.inc();
    if (r.joined) this.metrics.coalesced.inc();
    return r;
  }

  /** The outcome of a fill for one waiter: the file, or why not (also when it has another sha256 than asked). */
  async settle(fill: Fill, req: ObjectRequest, gone?: AbortSignal): Promise<ObjectMeta> {
    const meta = await (gone ? untilAborted(fill.promise, gone) : fill.promise);
    if (req.sha256 && meta.sha256 !== req.sha256) {
      throw new CacheError(502, "checksum", `${redact(req.url)} has sha256 ${meta.sha256}, not the ${req.sha256} that was asked for. Fix the #sha256= of this file in cache.io/files, or the file at the origin`);
    }
    if (fill.stale) this.metrics.staleServed.inc();
    return meta;
  }

  /** Wait for a complete file (filling it if needed); the wait ends with the fill (fillTimeout bounds it) or when `gone` aborts. */
  async complete(req: ObjectRequest & { prewarm?: boolean }, gone?: AbortSignal): Promise<ObjectMeta> {
    const a = await this.acquire(req);
    if ("meta" in a) return a.meta;
    try {
      return await this.settle(a.fill, req, gone);
    } finally {
      a.fill.leave();
    }
  }

  #due(meta: ObjectMeta): boolean {
    return Date.now() - Date.parse(meta.validatedAt) >= this.opts.policy().cache.revalidateAfter;
  }

  /**
   * Whether `data` is still the file that was verified: same inode, size, ctime and mtime,
   * else its sha256 is checked again (once per key at a time). A changed file is dropped.
   */
  async #intact(meta: ObjectMeta): Promise<boolean> {
    const id = await this.store.identity(meta.key);
    if (id && id.ino === meta.ino && id.size === meta.size && meta.ctimeNs && id.ctimeNs === meta.ctimeNs && id.mtimeNs === meta.mtimeNs) return true;
    let check = this.#verifying.get(meta.key);
    if (!check) {
      check = this.#reverify(meta).finally(() => this.#verifying.delete(meta.key));
      this.#verifying.set(meta.key, check);
    }
    return check;
  }

  async #reverify(meta: ObjectMeta): Promise<boolean> {
    const id = await this.store.identity(meta.key);
    const sha256 = id && id.ino === meta.ino && id.size === meta.size ? await this.store.hashData(meta.key).catch(() => null) : null;
    const after = await this.store.identity(meta.key);
    if (sha256 === meta.sha256 && after?.ctimeNs === id?.ctimeNs && after?.mtimeNs === id?.mtimeNs) {
      const updated: ObjectMeta = { ...meta, ...after };
      await this.store.writeMeta(updated);
      if (this.#index.get(meta.key) === meta) this.#index.set(meta.key, updated);
      this.log.info({ key: meta.key }, meta.ctimeNs ? "cached file was touched on disk; its sha256 still matches" : "cached file verified (meta without change times)");
      return true;
    }
    this.log.warn({ key: meta.key, url: redact(meta.url), sha256, want: meta.sha256 }, "cached file was modified on disk; dropped it (the next request fetches it again)");
    await this.#drop(meta.key);
    return false;
  }

  #record(meta: ObjectMeta): void {
    this.#index.set(meta.key, meta);
    this.budget.touch(meta.key);
    this.budget.trim();
  }

  /** Forget and remove an entry that must not be served (changed on disk, gone at the origin). */
  async #drop(key: string): Promise<void> {
    this.#index.delete(key);
    this.budget.delete(key);
    await this.store.remove(key).catch((err: Error) => this.log.error({ key, err: err.message }, "failed to remove a dropped file"));
  }

  #evict(key: string): void {
    this.#index.delete(key);
    this.metrics.evictions.inc();
    this.log.info({ key }, "evicted");
    this.store.remove(key).catch((err: Error) => this.log.error({ key, err: err.message }, "eviction failed to remove files"));
  }

  /** A reloaded policy that shrinks the budget evicts down to it. */
  #watchPolicy(): void {
    let seen = this.opts.policy();
    this.#policyTimer = setInterval(() => {
      const now = this.opts.policy();
      if (now === seen) return;
      const before = seen.cache.diskBudget;
      seen = now;
      void this.#prewarm(); // entries the reload added; those already handled are skipped
      if (now.cache.diskBudget >= before) return;
      const evicted = this.budget.trim();
      this.log.info({ diskBudget: now.cache.diskBudget, was: before, evicted: evicted.length, used: this.budget.used() }, "disk budget shrank; evicted down to it");
    }, this.opts.policyCheckMs ?? POLICY_CHECK_MS);
    this.#policyTimer.unref();
  }

  /** Whether `key` is one of the policy's cache.prewarm files (which peers may ask for without naming a caller). */
  isPrewarmKey(key: string): boolean {
    return this.opts.policy().cache.prewarm.some((raw) => {
      try {
        return this.#prewarmTarget(raw).key === key;
      } catch {
        return false;
      }
    });
  }

  /** A cache.prewarm entry as a request: its normalized URL and cache key. */
  #prewarmTarget(raw: string): { url: string; key: string } {
    const url = normalizeUrl(raw);
    return { url, key: cacheKey(url, this.opts.policy().cache.keyIgnoreQuery) };
  }

  /** cache.prewarm entries already pre-warmed or being pre-warmed (a reload pre-warms only the ones it adds). */
  readonly #prewarmed = new Set<string>();

  async #prewarm(): Promise<void> {
    const entries = this.opts.policy().cache.prewarm;
    for (const raw of this.#prewarmed) if (!entries.includes(raw)) this.#prewarmed.delete(raw); // removed: pre-warmed again if re-added
    for (const raw of entries) {
      if (this.#prewarmed.has(raw)) continue;
      this.#prewarmed.add(raw);
      try {
        const { url, key } = this.#prewarmTarget(raw);
        const why = checkOriginUrl(new URL(url), this.rules());
        if (why) throw new CacheError(403, "policy", why);
        const meta = await this.complete({ key, url, prewarm: true });
        this.log.info({ url: redact(url), bytes: meta.size }, "pre-warmed");
      } catch (err) {
        this.#prewarmed.delete(raw); // the next policy change tries it again
        this.log.warn({ url: redact(raw), err: (err as Error).message }, "pre-warm failed");
      }
    }
  }
}

/** `p`, or a rejection as soon as `signal` aborts (the caller stops waiting; `p` goes on). */
function untilAborted<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(new CacheError(499, "bad_request", "the client went away"));
  return new Promise((resolve, reject) => {
    const onAbort = () => reject(new CacheError(499, "bad_request", "the client went away"));
    signal.addEventListener("abort", onAbort, { once: true });
    p.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
  });
}
