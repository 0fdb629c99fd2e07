// Small statistics and formatting helpers shared by every benchmark.

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

/** a / b, NaN when b is 0. */
export function ratio(a: number, b: number): number {
  return b === 0 ? NaN : a / b;
}

export const MiB = 2 ** 20;
export const GiB = 2 ** 30;
export const MB = 1e6;

export function fmtMs(ms: number): string {
  if (!Number.isFinite(ms)) return "n/a";
  if (ms >= 10_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms >= 1000) return `${(ms / 1000).toFixed(2)} s`;
  if (ms >= 10) return `${ms.toFixed(0)} ms`;
  return `${ms.toFixed(2)} ms`;
}

export function fmtBytes(n: number): string {
  if (!Number.isFinite(n)) return "n/a";
  if (n >= GiB) return `${(n / GiB).toFixed(2)} GiB`;
  if (n >= MiB) return `${(n / MiB).toFixed(1)} MiB`;
  return `${(n / 1024).toFixed(0)} KiB`;
}

export function fmtRatio(r: number): string {
  if (!Number.isFinite(r)) return "n/a";
  return r < 0.1 ? `${r.toFixed(4)}x` : `${r.toFixed(2)}x`;
}

export function fmtNum(n: number, digits = 0): string {
  return Number.isFinite(n) ? n.toLocaleString("en-US", { maximumFractionDigits: digits, minimumFractionDigits: digits }) : "n/a";
}

/** A Markdown table; cells are already formatted strings. */
export function table(header: string[], rows: string[][]): string {
  const align = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}
