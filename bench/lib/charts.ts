// SVG charts for docs/BENCHMARKS.md: a vega-lite spec compiled to vega and rendered
// headless (no canvas: vega estimates text widths), written to docs/bench/.
import { writeFileSync } from "node:fs";
import * as vega from "vega";
import * as vl from "vega-lite";
import type { TopLevelSpec } from "vega-lite";

export async function renderSvg(spec: TopLevelSpec, file: string): Promise<void> {
  const compiled = vl.compile(spec).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: "none" });
  const svg = await view.toSVG();
  view.finalize();
  writeFileSync(file, svg + "\n");
}

export interface Bar {
  label: string;
  seconds: number;
  kind: string;
}

/** Horizontal bars on a log axis: time until the file is usable, per method. */
/** Where the log-scale bars of the time-to-data chart start (below every measured time). */
const LOG_FLOOR_S = 0.01;

export function timeToDataSpec(bars: Bar[], title: string): TopLevelSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 520,
    height: { step: 26 },
    data: { values: bars },
    layer: [
      {
        mark: "bar",
        encoding: {
          y: { field: "label", type: "nominal", sort: null, title: null, axis: { labelLimit: 400 } },
          // A log scale has no 0: the bars start at the axis' left end, else they have no width.
          x: { field: "seconds", type: "quantitative", scale: { type: "log", domainMin: LOG_FLOOR_S }, title: "seconds until the file is usable (log scale)" },
          x2: { datum: LOG_FLOOR_S },
          color: { field: "kind", type: "nominal", title: null, legend: { orient: "bottom", labelLimit: 400 } },
        },
      },
      {
        mark: { type: "text", align: "left", dx: 4 },
        encoding: {
          y: { field: "label", type: "nominal", sort: null },
          x: { field: "seconds", type: "quantitative" },
          text: { field: "seconds", type: "quantitative", format: ".3~r" },
        },
      },
    ],
  };
}

export interface BytesPoint {
  pods: number;
  files: number;
  series: string;
}

/** Origin bytes (in file sizes) against concurrent pods, cache-io against every pod fetching. */
export function originBytesSpec(points: BytesPoint[], title: string): TopLevelSpec {
  return {
    $schema: "https://vega.github.io/schema/vega-lite/v6.json",
    title,
    width: 480,
    height: 280,
    data: { values: points },
    mark: { type: "line", point: true },
    encoding: {
      x: { field: "pods", type: "quantitative", title: "pods asking at once (one cold node)" },
      y: { field: "files", type: "quantitative", title: "bytes from the origin, in file sizes" },
      color: { field: "series", type: "nominal", title: null, legend: { orient: "bottom", labelLimit: 400 } },
    },
  };
}
