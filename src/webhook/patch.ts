// The JSON Patch from the original pod to the injected one. The injection is
// copy-on-write (untouched objects are shared), so identity marks what did not change,
// and an array that only gained elements (NODE_IP prepended to env, mounts and volumes
// appended, the fetcher inserted) becomes `add` ops at those indices. A plain
// fast-json-patch compare() would instead replace every element after a prepend: a pod
// with 30,000 env entries cost 30,000 ops and hundreds of MiB.
import jsonpatch, { type Operation } from "fast-json-patch";

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === "object" && v !== null && !Array.isArray(v);
const at = (path: string, key: string | number) => `${path}/${jsonpatch.escapePathComponent(String(key))}`;

export function podPatch(before: unknown, after: unknown): Operation[] {
  const ops: Operation[] = [];
  diff(before, after, "", ops);
  return ops;
}

function diff(before: unknown, after: unknown, path: string, ops: Operation[]): void {
  if (before === after) return;
  if (Array.isArray(before) && Array.isArray(after)) return diffArray(before, after, path, ops);
  if (!isObject(before) || !isObject(after)) {
    ops.push({ op: "replace", path, value: after });
    return;
  }
  // Own properties only: a key such as "constructor" must not meet Object.prototype's.
  const has = (o: Json, key: string) => Object.hasOwn(o, key) && o[key] !== undefined;
  for (const key of Object.keys(before)) if (has(before, key) && !has(after, key)) ops.push({ op: "remove", path: at(path, key) });
  for (const [key, value] of Object.entries(after)) {
    if (value === undefined) continue;
    if (!has(before, key)) ops.push({ op: "add", path: at(path, key), value });
    else diff(before[key], value, at(path, key), ops);
  }
}

function diffArray(before: unknown[], after: unknown[], path: string, ops: Operation[]): void {
  let head = 0;
  while (head < before.length && head < after.length && before[head] === after[head]) head++;
  let tail = 0;
  while (tail < before.length - head && tail < after.length - head && before[before.length - 1 - tail] === after[after.length - 1 - tail]) tail++;
  if (head + tail === before.length) {
    // Only insertions, between the shared head and the shared tail.
    for (let i = head; i < after.length - tail; i++) ops.push({ op: "add", path: at(path, i), value: after[i] });
  } else if (before.length === after.length) {
    for (let i = 0; i < before.length; i++) diff(before[i], after[i], at(path, i), ops);
  } else {
    for (const op of jsonpatch.compare(before, after)) ops.push({ ...op, path: path + op.path });
  }
}
