// A second mutating webhook for the reinvocation test: HTTPS on 127.0.0.1, it adds a
// container named "late" to every pod that has none, so the API server reinvokes the
// webhooks that ran before it (reinvocationPolicy IfNeeded).
import { createServer, type Server } from "node:https";
import type { CertBundle } from "../../src/certs/generate.js";

export interface Mutator {
  port: number;
  ca: string;
  calls: number;
  close(): Promise<void>;
}

export async function startMutator(certs: { bundle: CertBundle }): Promise<Mutator> {
  const m = { port: 0, ca: certs.bundle.caCert, calls: 0, close: async () => {} } as Mutator;
  const server: Server = createServer({ cert: certs.bundle.cert, key: certs.bundle.key }, (req, res) => {
    let body = "";
    req.on("data", (d: Buffer) => {
      body += d;
      if (body.length > 3 * 2 ** 20) req.destroy();
    });
    req.on("end", () => {
      m.calls++;
      const review = JSON.parse(body);
      const containers = review.request.object.spec.containers as { name: string }[];
      const patch = containers.some((x) => x.name === "late") ? [] : [{ op: "add", path: "/spec/containers/-", value: { name: "late", image: "registry.example.com/late:1.0" } }];
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify({
        apiVersion: "admission.k8s.io/v1", kind: "AdmissionReview",
        response: { uid: review.request.uid, allowed: true, ...(patch.length ? { patchType: "JSONPatch", patch: Buffer.from(JSON.stringify(patch)).toString("base64") } : {}) },
      }));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  m.port = (server.address() as { port: number }).port;
  m.close = () => new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
  return m;
}
