// The source of a sha256 worker thread (run with `eval: true`, so it needs no file of
// its own next to the compiled code, under tsx or vitest alike). Each job is one temp
// file: the main thread says how far it is written (`extend`), the worker reads that
// prefix back (page cache) in 4 MiB steps and keeps a running sha256; jobs take turns.
// Messages in: {op: "open", id, path} | {op: "extend", id, upTo} | {op: "digest", id, size} | {op: "close", id}.
// Messages out: {id, digest} | {id, error}.

export const HASH_STEP = 4 << 20;

export const WORKER_SOURCE = `
"use strict";
const { parentPort } = require("node:worker_threads");
const { openSync, readSync, closeSync } = require("node:fs");
const { createHash } = require("node:crypto");
const STEP = ${HASH_STEP};
const buf = Buffer.allocUnsafeSlow(STEP);
const jobs = new Map();
let scheduled = false;

function drop(id) {
  const job = jobs.get(id);
  if (!job) return;
  jobs.delete(id);
  try { closeSync(job.fd); } catch {}
}

function fail(id, err) {
  drop(id);
  parentPort.postMessage({ id, error: err && err.message ? err.message : String(err) });
}

function settle(id, job) {
  if (job.size === undefined || job.hashed < job.size) return;
  drop(id);
  parentPort.postMessage({ id, digest: job.hash.digest("hex") });
}

function work() {
  scheduled = false;
  for (const [id, job] of jobs) {
    if (job.hashed >= job.upTo) continue;
    try {
      const n = readSync(job.fd, buf, 0, Math.min(STEP, job.upTo - job.hashed), job.hashed);
      if (n === 0) throw new Error("the temp file " + job.path + " is shorter than its " + job.upTo + " written bytes");
      job.hash.update(buf.subarray(0, n));
      job.hashed += n;
      settle(id, job);
    } catch (err) {
      fail(id, err);
    }
  }
  schedule();
}

function schedule() {
  if (scheduled) return;
  for (const job of jobs.values()) {
    if (job.hashed < job.upTo) {
      scheduled = true;
      setImmediate(work);
      return;
    }
  }
}

parentPort.on("message", (m) => {
  if (m.op === "open") {
    try {
      jobs.set(m.id, { fd: openSync(m.path, "r"), path: m.path, hash: createHash("sha256"), hashed: 0, upTo: 0, size: undefined });
    } catch (err) {
      fail(m.id, err);
    }
    return;
  }
  const job = jobs.get(m.id);
  if (!job) return;
  if (m.op === "close") return drop(m.id);
  if (m.op === "extend") job.upTo = Math.max(job.upTo, m.upTo);
  if (m.op === "digest") {
    if (m.size < job.hashed) return fail(m.id, new Error("asked for the sha256 of " + m.size + " bytes, " + job.hashed + " are hashed"));
    job.size = m.size;
    job.upTo = m.size;
    settle(m.id, job);
  }
  schedule();
});
`;
