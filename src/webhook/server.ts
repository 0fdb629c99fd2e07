// The webhook's HTTP routes: the review endpoints (node:http, review-route.ts) and, on
// express 5, probes, metrics and the JSON errors around them. Only routes: the decision
// is review(), a pure function.
import type { RequestListener } from "node:http";
import express, { type ErrorRequestHandler } from "express";
import type { Logger } from "../shared/log.js";
import type { Policy } from "../policy/schema.js";
import type { WebhookMetrics } from "./metrics.js";
import { ByteBudget, DEFAULT_LIMITS, RefusalLog, type ServingLimits } from "./limits.js";
import { answerReview, REVIEW_PATHS, type ReviewPath } from "./review-route.js";

export { REVIEW_PATHS } from "./review-route.js";

/** The policy in force; undefined while no valid policy has ever loaded. */
export interface PolicySource {
  current(): Policy | undefined;
}

export interface WebhookAppOptions {
  policy: PolicySource;
  metrics: WebhookMetrics;
  /** The serving certificate's expiry, for readiness; undefined when none is loaded. */
  certNotAfter?: () => Date | undefined;
  /** Body size, buffered bytes and body deadline (defaults: DEFAULT_LIMITS). */
  limits?: Partial<ServingLimits>;
  log?: Logger;
}

export { DEFAULT_BODY_LIMIT } from "./limits.js";

function readiness(opts: WebhookAppOptions): string[] {
  const problems: string[] = [];
  if (!opts.policy.current()) problems.push("no valid policy loaded");
  const notAfter = opts.certNotAfter?.();
  if (opts.certNotAfter && !notAfter) problems.push("no serving certificate loaded");
  else if (notAfter && notAfter.getTime() <= Date.now()) problems.push(`serving certificate expired at ${notAfter.toISOString()}`);
  return problems;
}

/** Client errors express raises (4xx) answered as JSON; anything else is our bug (500, logged). */
function errorHandler(opts: WebhookAppOptions): ErrorRequestHandler {
  return (err: { type?: string; status?: number; message?: string }, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err.type && err.status && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: err.message });
    } else {
      opts.log?.error({ err, method: req.method }, "unexpected error while serving a request");
      res.status(500).json({ error: "internal error; see the webhook's log" });
    }
  };
}

/** POST to a review path goes to the node:http hot path; everything else to express. */
export function createWebhookApp(opts: WebhookAppOptions): RequestListener {
  const limits = { ...DEFAULT_LIMITS, ...opts.limits };
  const state = { limits, budget: new ByteBudget(limits.maxInFlightBytes), refusals: new RefusalLog() };
  const app = expressApp(opts);
  return (req, res) => {
    const path = (req.url ?? "").split("?")[0] as ReviewPath;
    if (req.method === "POST" && Object.hasOwn(REVIEW_PATHS, path)) void answerReview(path, req, res, opts, state);
    else void app(req, res);
  };
}

function expressApp(opts: WebhookAppOptions): express.Express {
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  for (const path of Object.keys(REVIEW_PATHS)) {
    app.all(path, (_req, res) => void res.status(405).set("Allow", "POST").json({ error: `${path} accepts POST only` }));
  }
  app.get("/healthz", (_req, res) => void res.json({ status: "ok" }));
  app.get("/readyz", (_req, res) => {
    const problems = readiness(opts);
    res.status(problems.length ? 503 : 200).json(problems.length ? { status: "not ready", reasons: problems } : { status: "ready" });
  });
  app.get("/metrics", async (_req, res) => {
    res.type(opts.metrics.registry.contentType).send(await opts.metrics.registry.metrics());
  });
  app.use((_req, res) => void res.status(404).json({ error: "not found; the webhook serves POST /mutate, POST /mutate/copy, /healthz, /readyz, /metrics" }));
  app.use(errorHandler(opts));
  return app;
}
