// How many parts of a ranged fill are open at once: a fill starts with RAMP_START and,
// each RAMP_WINDOW_MS, doubles while its connections each bring less than RAMP_BELOW
// bytes/s, up to cache.parts.concurrency. An origin that limits each connection (an
// object store's 50-100 MB/s per stream) gets every part it may have within a few
// windows; a fast one (loopback, a near peer) keeps two and the CPU that six more cost.

export const RAMP_START = 2;
export const RAMP_WINDOW_MS = 100;
/** Per-connection rate (bytes/s) below which more parts are opened. */
export const RAMP_BELOW = 100e6;

export interface RampWindow {
  /** Parts being fetched now, the most allowed (cache.parts.concurrency), and parts not started yet. */
  open: number;
  max: number;
  waiting: number;
  /** Bytes the open parts received in the window, and its length. */
  bytes: number;
  ms: number;
}

/** Parts a fill opens at its start: RAMP_START, or all it may have when the ramp is off (`below` 0: cache.parts.rampBelow). */
export function initialParts(concurrency: number, below = RAMP_BELOW): number {
  return below === 0 ? concurrency : Math.min(RAMP_START, concurrency);
}

/** Parts to open beside the `open` ones after a window. */
export function partsToAdd(w: RampWindow, below = RAMP_BELOW): number {
  const room = Math.min(w.max - w.open, w.waiting);
  if (room <= 0 || w.ms <= 0 || w.open <= 0) return 0;
  const perConnection = (w.bytes * 1000) / w.ms / w.open;
  return perConnection < below ? Math.min(room, w.open) : 0;
}
