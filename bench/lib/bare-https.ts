// The webhook benchmark's baselines: a bare node:https server with the webhook's own
// cert, key and TLS floor. `fixed` reads each request body and answers one fixed
// AdmissionReview response; `review` parses the body and answers what review()
// returns (the webhook's work without express, logging or metrics).
// Run: node --import tsx bench/lib/bare-https.ts <certs dir> <fixed|review> [response file]
import { readFileSync } from "node:fs";
import { createServer, type ServerOptions } from "node:https";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { join } from "node:path";
import { defaultPolicy } from "../../src/policy/load.js";
import { review } from "../../src/webhook/review.js";

const [dir, mode, responseFile] = process.argv.slice(2);
if (!dir || (mode !== "fixed" && mode !== "review") || (mode === "fixed" && !responseFile)) {
  throw new Error("usage: bare-https.ts <certs dir> <fixed|review> [response file]");
}
const fixed = responseFile ? readFileSync(responseFile) : Buffer.alloc(0);
const policy = defaultPolicy();

function reply(res: ServerResponse, status: number, body: Buffer): void {
  res.writeHead(status, { "content-type": "application/json; charset=utf-8", "content-length": String(body.length) });
  res.end(body);
}

function handler(req: IncomingMessage, res: ServerResponse): void {
  if (mode === "fixed") {
    req.resume(); // read the review, as any server must, but do nothing with it
    req.on("end", () => reply(res, 200, fixed));
    return;
  }
  const chunks: Buffer[] = [];
  req.on("data", (c: Buffer) => chunks.push(c));
  req.on("end", () => {
    const result = review(JSON.parse(Buffer.concat(chunks).toString("utf8")), policy, { copyOnly: false });
    reply(res, result.httpStatus, Buffer.from(JSON.stringify(result.body)));
  });
}

const tls: ServerOptions = { minVersion: "TLSv1.2", cert: readFileSync(join(dir, "tls.crt")), key: readFileSync(join(dir, "tls.key")) };
const server = createServer(tls, handler);
server.keepAliveTimeout = 60_000;
server.listen(0, "127.0.0.1", () => {
  process.stdout.write(`bare https (${mode}) listening on 127.0.0.1:${(server.address() as AddressInfo).port}\n`);
});
process.once("SIGTERM", () => server.close(() => process.exit(0)));
