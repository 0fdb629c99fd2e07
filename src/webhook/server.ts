// The webhook's HTTP routes (express 5): review endpoints, probes, metrics, and the
// JSON errors around them. Only routes: the decision is review(), a pure function.
import express, { type ErrorRequestHandler, type Request, type Response } from "express";
import type { Logger } from "../shared/log.js";
import type { Policy } from "../policy/schema.js";
import type { WebhookMetrics } from "./metrics.js";
import { review } from "./review.js";

/** The policy in force; undefined while no valid policy has ever loaded. */
export interface PolicySource {
  current(): Policy | undefined;
}

export interface WebhookAppOptions {
  policy: PolicySource;
  metrics: WebhookMetrics;
  /** The serving certificate's expiry, for readiness; undefined when none is loaded. */
  certNotAfter?: () => Date | undefined;
  /** Largest accepted body in bytes. */
  bodyLimit?: number;
  log?: Logger;
}

/**
 * kube-apiserver refuses request bodies over 3 MiB and etcd objects over 1.5 MiB, so
 * an AdmissionReview of the largest storable Pod (with its JSON overhead) fits.
 */
export const DEFAULT_BODY_LIMIT = 3 * 1024 * 1024;

export const REVIEW_PATHS = { "/mutate": { copyOnly: false }, "/mutate/copy": { copyOnly: true } } as const;

const clip = (v: unknown, max = 253): string | undefined => (typeof v === "string" ? v.slice(0, max) : undefined);

/** The few request fields that may be logged: identifiers, never annotation values. */
function logFields(body: unknown): Record<string, string | undefined> {
  const req = (body as { request?: Record<string, unknown> } | undefined)?.request;
  const meta = (req?.object as { metadata?: Record<string, unknown> } | undefined)?.metadata;
  return { uid: clip(req?.uid, 64), namespace: clip(req?.namespace), pod: clip(meta?.name) ?? clip(meta?.generateName) };
}

function reviewHandler(path: keyof typeof REVIEW_PATHS, opts: WebhookAppOptions) {
  const { metrics, log } = opts;
  return (req: Request, res: Response) => {
    if (!req.is("application/json")) {
      res.status(415).json({ error: "send the AdmissionReview as JSON with Content-Type: application/json" });
      return;
    }
    const policy = opts.policy.current();
    if (!policy) {
      metrics.reviews.inc({ path, outcome: "error", reason: "no-policy" });
      res.status(503).json({ error: "no valid policy is loaded yet; see the webhook's log for the policy errors" });
      return;
    }
    const start = process.hrtime.bigint();
    const result = review(req.body, policy, REVIEW_PATHS[path]);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    metrics.reviews.inc({ path, outcome: result.outcome, reason: result.reason });
    metrics.reviewDuration.observe({ path }, seconds);
    log?.info({ ...logFields(req.body), path, outcome: result.outcome, reason: result.reason, latencyMs: seconds * 1000 }, "review");
    res.status(result.httpStatus).json(result.body);
  };
}

function readiness(opts: WebhookAppOptions): string[] {
  const problems: string[] = [];
  if (!opts.policy.current()) problems.push("no valid policy loaded");
  const notAfter = opts.certNotAfter?.();
  if (opts.certNotAfter && !notAfter) problems.push("no serving certificate loaded");
  else if (notAfter && notAfter.getTime() <= Date.now()) problems.push(`serving certificate expired at ${notAfter.toISOString()}`);
  return problems;
}

/** body-parser's client errors, answered as JSON; anything else is our bug (500, logged). */
function errorHandler(opts: WebhookAppOptions, limit: number): ErrorRequestHandler {
  return (err: { type?: string; status?: number; message?: string }, req, res, next) => {
    if (res.headersSent) return next(err);
    if (err.type === "entity.too.large") {
      res.status(413).json({ error: `request body exceeds the ${limit}-byte limit` });
    } else if (err.type === "entity.parse.failed") {
      res.status(400).json({ error: `request body is not valid JSON: ${err.message}` });
    } else if (err.type && err.status && err.status >= 400 && err.status < 500) {
      res.status(err.status).json({ error: err.message });
    } else {
      opts.log?.error({ err, method: req.method }, "unexpected error while serving a request");
      if (REVIEW_PATHS[req.path as keyof typeof REVIEW_PATHS]) opts.metrics.reviews.inc({ path: req.path, outcome: "error", reason: "internal" });
      res.status(500).json({ error: "internal error; see the webhook's log" });
    }
  };
}

export function createWebhookApp(opts: WebhookAppOptions): express.Express {
  const limit = opts.bodyLimit ?? DEFAULT_BODY_LIMIT;
  const app = express();
  app.disable("x-powered-by");
  app.set("etag", false);
  // No gzip: kube-apiserver sends plain JSON, and inflating is work an attacker could ask for.
  const json = express.json({ limit, type: "application/json", inflate: false });
  for (const path of Object.keys(REVIEW_PATHS) as (keyof typeof REVIEW_PATHS)[]) {
    app.post(path, json, reviewHandler(path, opts));
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
  app.use(errorHandler(opts, limit));
  return app;
}
