// Metric line charts on uPlot: step or time axis, smoothing, log scale, min/max band, overlays.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { get, qs, type Series } from "./api";
import { h } from "./dom";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];

export interface ChartOptions {
  ws: string;
  runs: string[];
  labels?: Record<string, string>;
  metric: string;
  /** A heading other than the metric's name (e.g. "CPU (% of one core)"). */
  title?: string;
  /** Where the data comes from instead of the store's metric series (system metrics: time only). */
  load?: (points: number) => Promise<Record<string, Series>>;
}

function smooth(ys: (number | null)[], weight: number): (number | null)[] {
  if (weight <= 0) return ys;
  let last: number | null = null;
  return ys.map((y) => {
    if (y === null) return null;
    last = last === null ? y : last * weight + y * (1 - weight);
    return last;
  });
}

/** A chart card that fetches downsampled data; call `refresh()` again to follow a live run. */
export function metricChart(opts: ChartOptions): { el: HTMLElement; refresh: () => Promise<void>; data: () => Record<string, Series> } {
  const id = `c${Math.random().toString(36).slice(2, 8)}`;
  const axes = opts.load ? ["time"] : ["step", "time"];
  const axisSel = h("select", { id: `${id}-x`, "aria-label": `${opts.metric}: x axis` }, ...axes.map((a) => h("option", { value: a }, a)));
  const smoothIn = h("input", { id: `${id}-s`, type: "range", min: 0, max: 0.99, step: 0.01, value: 0, "aria-label": `${opts.metric}: smoothing` });
  const logIn = h("input", { id: `${id}-l`, type: "checkbox", "aria-label": `${opts.metric}: log scale` });
  const plotBox = h("div", { class: "plot", role: "img", "aria-label": `Chart of ${opts.metric}` });
  const note = h("p", { class: "muted small" });
  const el = h(
    "section",
    { class: "card chart", "data-metric": opts.metric },
    h("h3", {}, opts.title ?? opts.metric),
    h("div", { class: "controls" },
      h("label", { for: `${id}-x` }, "x "), axisSel,
      h("label", { for: `${id}-s` }, " smoothing "), smoothIn,
      h("label", { for: `${id}-l` }, " log "), logIn),
    plotBox,
    note
  );
  let plot: uPlot | null = null;
  let series: Record<string, Series> = {};

  function draw(): void {
    const runs = opts.runs.filter((r) => series[r] && series[r].count);
    const width = Math.max(240, plotBox.clientWidth || 600);
    plot?.destroy();
    plot = null;
    if (!runs.length) {
      plotBox.replaceChildren(h("p", { class: "muted" }, "No points yet."));
      return;
    }
    plotBox.replaceChildren();
    const weight = Number(smoothIn.value);
    const tables = runs.map((r) => [series[r].x as number[], smooth(series[r].y, weight) as number[]] as uPlot.AlignedData);
    const data = tables.length === 1 ? tables[0] : uPlot.join(tables as uPlot.AlignedData[]);
    const isLog = logIn.checked;
    plot = new uPlot(
      {
        width,
        height: 240,
        scales: { x: { time: axisSel.value === "time" }, y: isLog ? { distr: 3 } : {} },
        series: [
          {},
          ...runs.map((r, i) => ({
            label: opts.labels?.[r] ?? r,
            stroke: COLORS[i % COLORS.length],
            width: 1.5,
            spanGaps: true,
          })),
        ],
        legend: { show: runs.length > 1 || true },
      },
      data as uPlot.AlignedData,
      plotBox
    );
    const total = runs.reduce((n, r) => n + series[r].count, 0);
    note.textContent = `${total.toLocaleString()} points${runs.some((r) => series[r].downsampled) ? " (downsampled on the server: last value per pixel)" : ""}`;
  }

  async function refresh(): Promise<void> {
    const points = Math.min(4000, Math.max(100, Math.round(plotBox.clientWidth || 800)));
    if (opts.load) {
      series = await opts.load(points);
      draw();
      return;
    }
    const resp = await get<{ runs: Record<string, Series> }>(
      `w/${encodeURIComponent(opts.ws)}/series?${qs({ name: opts.metric, run: opts.runs, x: axisSel.value, points })}`
    );
    series = resp.runs;
    draw();
  }
  axisSel.addEventListener("change", () => void refresh());
  smoothIn.addEventListener("input", draw);
  logIn.addEventListener("change", draw);
  return { el, refresh, data: () => series };
}
