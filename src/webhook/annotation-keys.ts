// Mistakes in cache.io/* annotation keys that would otherwise pass silently: an unknown
// key (a typo such as cache.io/mountpath) is answered with an admission warning naming
// the key and the known key it most likely means.
import { ANNOTATION } from "../shared/protocol.js";
import { quote } from "./messages.js";

const PREFIX = "cache.io/";
const KNOWN: readonly string[] = Object.values(ANNOTATION);
/** Longer keys are not compared (bounds the work a hostile annotation can cause). */
const MAX_COMPARED = 64;

/** Levenshtein distance, case-insensitive. */
export function editDistance(a: string, b: string): number {
  const x = a.toLowerCase();
  const y = b.toLowerCase();
  let prev = Array.from({ length: y.length + 1 }, (_, j) => j);
  for (let i = 1; i <= x.length; i++) {
    const row = [i];
    for (let j = 1; j <= y.length; j++) row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (x[i - 1] === y[j - 1] ? 0 : 1));
    prev = row;
  }
  return prev[y.length]!;
}

/** The known key `key` most likely means, when it is close enough to be a typo. */
export function closestKey(key: string): string | undefined {
  if (key.length > MAX_COMPARED) return undefined;
  const name = key.slice(PREFIX.length);
  let best: { key: string; d: number } | undefined;
  for (const k of KNOWN) {
    const d = editDistance(name, k.slice(PREFIX.length));
    if (!best || d < best.d) best = { key: k, d };
  }
  return best && best.d <= Math.max(2, Math.floor(name.length / 3)) ? best.key : undefined;
}

/** One warning per unknown cache.io/* key (at most `max`), each naming the likely intended key. */
export function unknownKeyWarnings(annotations: unknown, max = 5): string[] {
  if (typeof annotations !== "object" || annotations === null) return [];
  const unknown = Object.keys(annotations).filter((k) => k.toLowerCase().startsWith(PREFIX) && !KNOWN.includes(k));
  const known = KNOWN.map((k) => `"${k}"`).join(", ");
  return unknown.slice(0, max).map((k) => {
    const guess = closestKey(k);
    return guess
      ? `annotation ${quote(k, 63)} is not a cache.io annotation and is ignored; did you mean "${guess}"?`
      : `annotation ${quote(k, 63)} is not a cache.io annotation and is ignored; the cache.io annotations are ${known}.`;
  });
}
