// `cache-io inject`: like `istioctl kube-inject`, print workloads as the webhook
// would mutate them, through exactly the same decide() as the server.
import { readFileSync } from "node:fs";
import { parseAllDocuments, stringify } from "yaml";
import { defaultPolicy } from "../policy/load.js";
import type { Policy } from "../policy/schema.js";
import { PolicyStore } from "../policy/store.js";
import { decide } from "../webhook/decide.js";
import { podSites } from "../webhook/workloads.js";

export type Format = "yaml" | "json";

export interface InjectOptions {
  filename: string;
  policy?: string;
  namespace?: string;
  copyOnly?: boolean;
  /** Output format; default: the input's. */
  output?: Format;
}

export interface InjectResult {
  ok: boolean;
  stdout: string;
  /** Denials and warnings, one per line. */
  stderr: string[];
}

/** Parse, mutate and render; no I/O (run() reads the input and writes the result). */
export function injectText(text: string, policy: Policy, opts: Omit<InjectOptions, "filename" | "policy">): InjectResult {
  const { docs, format } = parseDocs(text);
  const stderr: string[] = [];
  let ok = true;
  for (const site of docs.flatMap(podSites)) {
    const d = decide(site.pod, policy, { namespace: site.namespace ?? opts.namespace, copyOnly: opts.copyOnly ?? false });
    stderr.push(...d.warnings.map((w) => `${site.owner}: warning: ${w}`));
    if (d.action === "deny") {
      ok = false;
      stderr.push(`${site.owner}: denied: ${d.message}`);
      continue;
    }
    if (d.action === "mutate") site.replace(d.pod);
  }
  return { ok, stdout: ok ? render(docs, opts.output ?? format) : "", stderr };
}

function parseDocs(text: string): { docs: unknown[]; format: Format } {
  const json = parseJson(text);
  if (json !== undefined) return { docs: Array.isArray(json) ? json : [json], format: "json" };
  const docs = parseAllDocuments(text);
  if (!Array.isArray(docs)) return { docs: [], format: "yaml" }; // an empty stream
  const errors = docs.flatMap((d) => d.errors.map((e) => e.message));
  if (errors.length) throw new Error(`the input is not valid YAML or JSON: ${errors.join("; ")}`);
  return { docs: docs.map((d) => d.toJS() as unknown).filter((d) => d !== null && d !== undefined), format: "yaml" };
}

/** One JSON value, or undefined (then it is YAML, which also covers flow-style documents). */
function parseJson(text: string): unknown {
  if (!/^\s*[[{]/.test(text)) return undefined;
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return undefined;
  }
}

function render(docs: unknown[], format: Format): string {
  if (format === "yaml") return docs.map((d) => stringify(d, { lineWidth: 0 })).join("---\n");
  const out = docs.length === 1 ? docs[0] : { apiVersion: "v1", kind: "List", items: docs };
  return JSON.stringify(out, null, 2) + "\n";
}

export async function run(opts: InjectOptions): Promise<void> {
  const text = readFileSync(opts.filename === "-" ? 0 : opts.filename, "utf8");
  const policy = opts.policy ? PolicyStore.fromFile(opts.policy).current() : defaultPolicy();
  const result = injectText(text, policy, opts);
  for (const line of result.stderr) process.stderr.write(`${line}\n`);
  process.stdout.write(result.stdout);
  if (!result.ok) process.exitCode = 1;
}
