// The hot path: POST /mutate and /mutate/copy answered on node:http directly. Express
// routing, body-parser and res.json cost about as much as review() itself, and this
// route is what kube-apiserver waits on for every annotated pod. Everything else
// (probes, metrics, 404/405) stays on express.
import type { IncomingMessage, ServerResponse } from "node:http";
import { WEBHOOK_PATHS } from "../shared/protocol.js";
import { readBody } from "./body.js";
import { MAX_JSON_VALUES, tooManyJsonValues, type ByteBudget, type RefusalLog, type ServingLimits } from "./limits.js";
import { review } from "./review.js";
import type { WebhookAppOptions } from "./server.js";

export const REVIEW_PATHS = { [WEBHOOK_PATHS.mount]: { copyOnly: false }, [WEBHOOK_PATHS.copy]: { copyOnly: true } } as const;
export type ReviewPath = keyof typeof REVIEW_PATHS;

const clip = (v: unknown, max = 253): string | undefined => (typeof v === "string" ? v.slice(0, max) : undefined);

/** The few request fields that may be logged: identifiers, never annotation values. */
function logFields(body: unknown): Record<string, string | undefined> {
  const req = (body as { request?: Record<string, unknown> } | undefined)?.request;
  const meta = (req?.object as { metadata?: Record<string, unknown> } | undefined)?.metadata;
  return { uid: clip(req?.uid, 64), namespace: clip(req?.namespace), pod: clip(meta?.name) ?? clip(meta?.generateName) };
}

function send(res: ServerResponse, status: number, body: unknown, close = false): void {
  const text = JSON.stringify(body);
  const headers: Record<string, string | number> = { "content-type": "application/json; charset=utf-8", "content-length": Buffer.byteLength(text) };
  if (close) headers.connection = "close"; // the body was not read to its end: this connection carries no next request
  res.writeHead(status, headers);
  res.end(text);
}

/** Why the request cannot be a review we read, or undefined. */
function refuseHeaders(req: IncomingMessage, limit: number): [number, string] | undefined {
  const type = (req.headers["content-type"] ?? "").split(";")[0]!.trim().toLowerCase();
  if (type !== "application/json") return [415, "send the AdmissionReview as JSON with Content-Type: application/json"];
  // No gzip: kube-apiserver sends plain JSON, and inflating is work an attacker could ask for.
  const encoding = (req.headers["content-encoding"] ?? "identity").toLowerCase();
  if (encoding !== "identity") return [415, `unsupported content encoding "${encoding}"`];
  if (Number(req.headers["content-length"] ?? 0) > limit) return [413, `request body exceeds the ${limit}-byte limit`];
  return undefined;
}

/** What all reviews of one server share: the limits, the byte budget, the throttle on refusal logs. */
export interface ServingState {
  limits: ServingLimits;
  budget: ByteBudget;
  refusals: RefusalLog;
}

export async function answerReview(path: ReviewPath, req: IncomingMessage, res: ServerResponse, opts: WebhookAppOptions, state: ServingState): Promise<void> {
  const { limits, budget } = state;
  const { metrics, log } = opts;
  let release = () => {};
  try {
    const refusal = refuseHeaders(req, limits.bodyLimit);
    if (refusal) return send(res, refusal[0], { error: refusal[1] });
    const read = await readBody(req, limits, budget);
    if (!read.ok) {
      if (read.status === 0) return; // the client went away
      metrics.reviews.inc({ path, outcome: "error", reason: read.reason });
      const suppressed = state.refusals.admit(read.reason);
      if (suppressed !== undefined) log?.warn({ path, status: read.status, reason: read.reason, remote: req.socket.remoteAddress, suppressed }, read.error);
      return send(res, read.status, { error: read.error }, read.close);
    }
    release = read.release;
    const raw = read.body;
    if (tooManyJsonValues(raw)) {
      metrics.reviews.inc({ path, outcome: "error", reason: "too-complex" });
      return send(res, 413, { error: `request body holds more than ${MAX_JSON_VALUES} JSON values; a Pod's AdmissionReview holds far fewer` });
    }
    let body: unknown;
    try {
      body = JSON.parse(raw.toString("utf8"));
    } catch (err) {
      return send(res, 400, { error: `request body is not valid JSON: ${(err as Error).message}` });
    }
    const policy = opts.policy.current();
    if (!policy) {
      metrics.reviews.inc({ path, outcome: "error", reason: "no-policy" });
      return send(res, 503, { error: "no valid policy is loaded yet; see the webhook's log for the policy errors" });
    }
    const start = process.hrtime.bigint();
    const result = review(body, policy, REVIEW_PATHS[path]);
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    metrics.reviews.inc({ path, outcome: result.outcome, reason: result.reason });
    metrics.reviewDuration.observe({ path }, seconds);
    log?.info({ ...logFields(body), path, outcome: result.outcome, reason: result.reason, latencyMs: seconds * 1000 }, "review");
    send(res, result.httpStatus, result.body);
  } catch (err) {
    log?.error({ err, method: req.method }, "unexpected error while serving a review");
    metrics.reviews.inc({ path, outcome: "error", reason: "internal" });
    if (!res.headersSent) send(res, 500, { error: "internal error; see the webhook's log" });
    else res.destroy();
  } finally {
    release();
  }
}
