// Experiments, the runs table and a run's page.
import { get, post, qs, type RunRow, type Series } from "./api";
import { metricChart } from "./chart";
import { fmtDuration, fmtTime, fmtValue, h, kvTable, statusBadge } from "./dom";
import type { Page } from "./main";

const enc = encodeURIComponent;

export const experimentsPage: Page = async (ws, _params, main) => {
  const { experiments } = await get<{ experiments: { id: number; name: string; runs: number | null; created_at: number }[] }>(`w/${enc(ws)}/experiments`);
  main.replaceChildren(
    h("h1", {}, "Experiments"),
    h("p", {}, h("a", { href: `#/w/${enc(ws)}/runs` }, "All runs of the workspace")),
    experiments.length
      ? h("table", { class: "grid", "aria-label": "Experiments" },
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Name"), h("th", { scope: "col" }, "Runs"), h("th", { scope: "col" }, "Created"))),
          h("tbody", {}, ...experiments.map((e) =>
            h("tr", {}, h("td", {}, h("a", { href: `#/w/${enc(ws)}/runs?experiment=${e.id}` }, e.name)), h("td", {}, fmtValue(e.runs)), h("td", {}, fmtTime(e.created_at))))))
      : h("p", { class: "muted" }, "No experiments yet: submit a run.")
  );
};

interface Column { key: string; label: string; sort?: string; cell: (r: RunRow) => Node | string }

function baseColumns(ws: string): Column[] {
  return [
    { key: "run", label: "Run", sort: "number", cell: (r) => h("a", { href: `#/w/${enc(ws)}/runs/${enc(r.run_id)}` }, r.display_name || r.run_id) },
    { key: "experiment", label: "Experiment", cell: (r) => r.experiment },
    { key: "status", label: "Status", sort: "status", cell: (r) => statusBadge(r.status) },
    { key: "created", label: "Created", sort: "created_at", cell: (r) => fmtTime(r.created_at) },
    { key: "duration", label: "Duration", sort: "duration", cell: (r) => fmtDuration(r.duration) },
    { key: "user", label: "User", sort: "submitted_by", cell: (r) => r.user || "—" },
    { key: "type", label: "Type", sort: "run_type", cell: (r) => r.run_type.replace("azureml.", "") },
  ];
}

export const runsPage: Page = async (ws, params, main) => {
  const state = {
    sort: params.get("sort") || "created_at",
    desc: params.get("desc") !== "0",
    offset: Number(params.get("offset") || 0),
    limit: 50,
    q: params.get("q") || "",
    status: params.get("status") || "",
    experiment: params.get("experiment") || undefined,
  };
  const hidden = new Set<string>(JSON.parse(localStorage.getItem("ty-hidden-cols") || "[]"));
  const selected = new Set<string>();
  const search = h("input", { id: "run-q", type: "search", value: state.q, placeholder: "run id or name" });
  const statusSel = h("select", { id: "run-status" }, ...["", "Running", "Completed", "Failed", "Canceled", "Queued"].map((s) => h("option", { value: s }, s || "any")));
  statusSel.value = state.status;
  const info = h("p", { class: "muted", "aria-live": "polite" });
  const table = h("table", { class: "grid runs", "aria-label": "Runs", "aria-rowcount": -1 });
  const chooser = h("details", { class: "chooser" }, h("summary", {}, "Columns"));
  const compareBtn = h("button", { type: "button", disabled: true }, "Compare selected");
  const pager = h("nav", { class: "pager", "aria-label": "Pages" });
  main.replaceChildren(
    h("h1", {}, "Runs"),
    h("form", { class: "filters", role: "search", onsubmit: (e: Event) => { e.preventDefault(); state.q = search.value; state.status = statusSel.value; state.offset = 0; void load(); } },
      h("label", { for: "run-q" }, "Search "), search,
      h("label", { for: "run-status" }, " Status "), statusSel,
      h("button", { type: "submit" }, "Filter"), chooser, compareBtn),
    info, h("div", { class: "scroll" }, table), pager
  );
  compareBtn.addEventListener("click", () => { location.hash = `#/w/${enc(ws)}/compare?runs=${[...selected].map(enc).join(",")}`; });

  async function load(): Promise<void> {
    const resp = await get<{ total: number; runs: RunRow[] }>(`w/${enc(ws)}/runs?${qs({ sort: state.sort, desc: state.desc ? 1 : 0, offset: state.offset, limit: state.limit, q: state.q, status: state.status ? [state.status] : undefined, experiment: state.experiment })}`);
    const paramKeys = [...new Set(resp.runs.flatMap((r) => Object.keys(r.properties)))].filter((k) => k !== "hyperparameters" && !k.startsWith("_")).sort().slice(0, 12);
    const tagKeys = [...new Set(resp.runs.flatMap((r) => Object.keys(r.tags)))].filter((k) => !k.startsWith("_")).sort().slice(0, 8);
    const metricKeys = [...new Set(resp.runs.flatMap((r) => Object.keys(r.metrics)))].sort().slice(0, 12);
    const cols: Column[] = [
      ...baseColumns(ws),
      ...paramKeys.map((k) => ({ key: `p:${k}`, label: k, sort: `property:${k}`, cell: (r: RunRow) => fmtValue(r.properties[k]) })),
      ...tagKeys.map((k) => ({ key: `t:${k}`, label: `#${k}`, sort: `tag:${k}`, cell: (r: RunRow) => fmtValue(r.tags[k]) })),
      ...metricKeys.map((k) => ({ key: `m:${k}`, label: k, sort: `metric:${k}`, cell: (r: RunRow) => fmtValue(r.metrics[k]) })),
    ];
    chooser.replaceChildren(h("summary", {}, "Columns"), ...cols.map((c) => {
      const box = h("input", { type: "checkbox", id: `col-${c.key}`, checked: !hidden.has(c.key) });
      box.addEventListener("change", () => { if (box.checked) hidden.delete(c.key); else hidden.add(c.key); localStorage.setItem("ty-hidden-cols", JSON.stringify([...hidden])); void load(); });
      return h("div", {}, box, h("label", { for: `col-${c.key}` }, ` ${c.label}`));
    }));
    const shown = cols.filter((c) => !hidden.has(c.key));
    const head = h("tr", {}, h("th", { scope: "col" }, h("span", { class: "sr" }, "Select")), ...shown.map((c) => {
      if (!c.sort) return h("th", { scope: "col" }, c.label);
      const active = state.sort === c.sort;
      const btn = h("button", { type: "button", class: "sort" }, c.label, active ? (state.desc ? " ▼" : " ▲") : "");
      btn.addEventListener("click", () => { state.desc = active ? !state.desc : c.sort !== "number" && c.sort !== "created_at" ? false : true; state.sort = c.sort!; state.offset = 0; void load(); });
      return h("th", { scope: "col", "aria-sort": active ? (state.desc ? "descending" : "ascending") : "none" }, btn);
    }));
    const body = h("tbody", {}, ...resp.runs.map((r, i) => {
      const box = h("input", { type: "checkbox", "aria-label": `select ${r.run_id}`, checked: selected.has(r.run_id) });
      box.addEventListener("change", () => { if (box.checked) selected.add(r.run_id); else selected.delete(r.run_id); compareBtn.disabled = selected.size < 2; });
      const row = h("tr", { tabindex: i === 0 ? 0 : -1, "data-run": r.run_id, "aria-rowindex": state.offset + i + 2 }, h("td", {}, box), ...shown.map((c) => h("td", {}, c.cell(r))));
      row.addEventListener("keydown", (e: KeyboardEvent) => {
        const go = (el: Element | null) => { if (el instanceof HTMLElement) { row.tabIndex = -1; el.tabIndex = 0; el.focus(); } };
        if (e.key === "ArrowDown" || e.key === "j") { e.preventDefault(); go(row.nextElementSibling); }
        else if (e.key === "ArrowUp" || e.key === "k") { e.preventDefault(); go(row.previousElementSibling); }
        else if (e.key === "Enter") location.hash = `#/w/${enc(ws)}/runs/${enc(r.run_id)}`;
        else if (e.key === " ") { e.preventDefault(); box.click(); }
      });
      return row;
    }));
    table.setAttribute("aria-rowcount", String(resp.total + 1));
    table.replaceChildren(h("thead", {}, head), body);
    const last = Math.min(resp.total, state.offset + resp.runs.length);
    info.textContent = resp.total ? `Runs ${state.offset + 1}–${last} of ${resp.total.toLocaleString()}` : "No runs match.";
    const prev = h("button", { type: "button", disabled: state.offset === 0 }, "← Previous");
    const next = h("button", { type: "button", disabled: last >= resp.total }, "Next →");
    prev.addEventListener("click", () => { state.offset = Math.max(0, state.offset - state.limit); void load(); });
    next.addEventListener("click", () => { state.offset += state.limit; void load(); });
    pager.replaceChildren(prev, next);
  }
  await load();
};

interface Details extends RunRow {
  description: string | null;
  definition: Record<string, unknown>;
  runtime: Record<string, unknown>;
  error: Record<string, unknown> | null;
  snapshot_id: string | null;
  timeline: { status: string; at: number; reason: string | null }[];
  metric_names: { name: string; kind: string; count: number; numeric: boolean }[];
  terminal: boolean;
  children: number;
}

export const runPage: Page = async (ws, _params, main, runId, alive) => {
  const base = `w/${enc(ws)}/runs/${enc(runId!)}`;
  let d = await get<Details>(base);
  const header = h("div", { class: "runhead" });
  const timeline = h("section", { class: "card" });
  const charts = h("div", { class: "charts" });
  const values = h("div", { class: "values" });
  const logBox = h("pre", { class: "log", tabindex: 0, "aria-label": "Log", "aria-live": "off" });
  const logSel = h("select", { id: "log-name" });
  const files = h("section", { class: "card" }, h("h3", {}, "Files"));
  const snapshot = h("section", { class: "card snapshot", hidden: !d.snapshot_id }, h("h3", {}, "Snapshot"));
  const children = h("section", { class: "card", hidden: true });
  const chartMap = new Map<string, ReturnType<typeof metricChart>>();
  const systemCharts = h("div", { class: "charts" });
  const system = h("section", { class: "card system", hidden: true, "aria-label": "System metrics" },
    h("h3", {}, "System metrics"),
    h("p", { class: "muted small" }, "Sampled by the run's supervisor: the script's processes (CPU, memory, disk I/O), the machine's network, and NVIDIA GPUs where present."),
    systemCharts);
  const systemMap = new Map<string, ReturnType<typeof metricChart>>();
  let systemData: { name: string; label: string; unit: string; series: Series }[] = [];

  function renderHead(): void {
    const acts: Node[] = [];
    if (!d.terminal) {
      const cancel = h("button", { type: "button", class: "danger" }, "Cancel run");
      cancel.addEventListener("click", async () => { await post(`${base}/cancel`); });
      acts.push(cancel);
    }
    if (d.run_type.includes("hyperdrive")) acts.push(h("a", { href: `#/w/${enc(ws)}/sweeps/${enc(d.run_id)}` }, "Sweep page"));
    if (d.parent_run_id) acts.push(h("a", { href: `#/w/${enc(ws)}/runs/${enc(d.parent_run_id)}` }, "Parent run"));
    header.replaceChildren(
      h("h1", {}, d.display_name || d.run_id, " ", statusBadge(d.status)),
      h("p", { class: "muted" }, `${d.run_id} · ${d.experiment} · #${d.number} · ${d.user || "?"} · ${d.target || "local"} · ${fmtDuration(d.duration)}`),
      h("div", { class: "actions" }, ...acts)
    );
    timeline.replaceChildren(h("h3", {}, "Timeline"), h("ol", { class: "timeline" }, ...d.timeline.map((e) => h("li", {}, h("strong", {}, e.status), ` ${fmtTime(e.at)}`, e.reason ? ` — ${e.reason}` : ""))));
  }

  function renderMetrics(): void {
    for (const m of d.metric_names) {
      if (m.numeric && !chartMap.has(m.name)) {
        const c = metricChart({ ws, runs: [d.run_id], labels: { [d.run_id]: m.name }, metric: m.name });
        chartMap.set(m.name, c);
        charts.append(c.el);
        void c.refresh();
      }
    }
    const others = d.metric_names.filter((m) => !m.numeric);
    values.replaceChildren();
    for (const m of others) {
      const card = h("section", { class: "card", "data-metric": m.name }, h("h3", {}, `${m.name} (${m.kind})`));
      values.append(card);
      void get<{ points: { value: unknown; step: number }[] }>(`${base}/values?${qs({ name: m.name, limit: 20 })}`).then((r) => card.append(renderValue(m.kind, r.points, base)));
    }
  }

  async function loadSystem(): Promise<void> {
    const r = await get<{ metrics: typeof systemData }>(`${base}/system?${qs({ points: 800 })}`);
    systemData = r.metrics;
    system.hidden = !systemData.length;
    for (const m of systemData) {
      let c = systemMap.get(m.name);
      if (!c) {
        const name = m.name;
        c = metricChart({
          ws, runs: [d.run_id], labels: { [d.run_id]: m.label }, metric: `system/${name}`, title: `${m.label} (${m.unit})`,
          load: async () => {
            const found = systemData.find((x) => x.name === name);
            return found ? { [d.run_id]: found.series } : {};
          },
        });
        systemMap.set(name, c);
        systemCharts.append(c.el);
      }
    }
    // Drawn once every card is in place: each takes its width from the laid-out grid.
    await Promise.all([...systemMap.values()].map((c) => c.refresh()));
  }

  let logOffset = 0;
  let logPicked = false; // the viewer chose a log: keep it; else follow the user log once it exists
  async function loadLogs(): Promise<void> {
    const { logs } = await get<{ logs: string[] }>(`${base}/logs`);
    const current = logSel.value;
    const userLog = logs.find((n) => n.includes("std_log"));
    const want = (logPicked && current) || userLog || current || logs[0] || "";
    if (want !== current) { logOffset = 0; logBox.textContent = ""; }
    logSel.replaceChildren(...logs.map((n) => h("option", { value: n }, n)));
    logSel.value = want;
    logSel.hidden = !logs.length;
    if (!logs.length && !logBox.textContent) logBox.textContent = "No logs yet.";
    else if (logs.length && logBox.textContent === "No logs yet.") logBox.textContent = "";
  }
  async function tailLog(): Promise<void> {
    if (!logSel.value) return;
    for (let i = 0; i < 8; i++) {
      const r = await get<{ text: string; next: number; more: boolean }>(`${base}/log?${qs({ name: logSel.value, offset: logOffset })}`);
      if (r.text) { logBox.append(r.text); logBox.scrollTop = logBox.scrollHeight; }
      logOffset = r.next;
      if (!r.more) break;
    }
  }
  logSel.addEventListener("change", () => { logPicked = true; logOffset = 0; logBox.textContent = ""; void tailLog(); });

  async function loadFiles(): Promise<void> {
    const { files: list } = await get<{ files: { path: string; size: number }[] }>(`${base}/files`);
    files.replaceChildren(h("h3", {}, `Files (${list.length})`), list.length
      ? h("ul", { class: "files" }, ...list.map((f) => h("li", {}, h("a", { href: `api/${base}/file?${qs({ path: f.path })}`, download: f.path.split("/").pop() }, f.path), h("span", { class: "muted" }, ` ${f.size.toLocaleString()} B`))))
      : h("p", { class: "muted" }, "No files yet."));
  }

  async function loadSnapshot(): Promise<void> {
    if (!d.snapshot_id) return;
    const snap = await get<{ snapshot_id: string; files: { path: string; size: number }[]; file_count?: number; total_bytes: number; missing?: boolean }>(`${base}/snapshot`);
    const n = snap.file_count ?? snap.files.length;
    const title = h("h3", {}, `Snapshot (${n.toLocaleString()} file${n === 1 ? "" : "s"}, ${snap.total_bytes.toLocaleString()} B)`);
    const zip = snap.missing ? "" : h("a", { href: `api/${base}/snapshot.zip`, download: `snapshot-${d.run_id}.zip` }, "Download all (zip)");
    snapshot.replaceChildren(title, h("p", { class: "muted" }, `id ${snap.snapshot_id} `, zip), snap.missing
      ? h("p", { class: "muted" }, "This snapshot is not stored in this workspace.")
      : h("ul", { class: "files snapshot-files" }, ...snap.files.map((f) => h("li", {}, h("a", { href: `api/${base}/snapshot/file?${qs({ path: f.path })}`, download: f.path.split("/").pop() }, f.path), h("span", { class: "muted" }, ` ${f.size.toLocaleString()} B`)))));
  }

  async function loadChildren(): Promise<void> {
    children.hidden = !d.children;
    if (!d.children) return;
    const r = await get<{ total: number; runs: RunRow[] }>(`w/${enc(ws)}/runs?${qs({ parent: d.run_id, limit: 100, desc: 0 })}`);
    children.replaceChildren(h("h3", {}, `Child runs (${r.total})`), h("ul", {}, ...r.runs.map((c) => h("li", {}, h("a", { href: `#/w/${enc(ws)}/runs/${enc(c.run_id)}` }, c.run_id), " ", statusBadge(c.status)))));
  }

  renderHead();
  const err = d.error ? h("section", { class: "card error", role: "alert" }, h("h3", {}, "Error"), h("pre", {}, fmtValue((d.error as Record<string, unknown>).message ?? d.error)), (d.error as Record<string, unknown>).traceback ? h("pre", { class: "tb" }, String((d.error as Record<string, unknown>).traceback)) : null) : null;
  main.replaceChildren(
    header, err || "", charts, values, system,
    h("section", { class: "card" }, h("h3", {}, h("label", { for: "log-name" }, "Log ")), logSel, logBox),
    h("div", { class: "cols" }, timeline,
      kvTable("Parameters (properties)", Object.fromEntries(Object.entries(d.properties).filter(([k]) => !k.startsWith("_")))),
      kvTable("Tags", Object.fromEntries(Object.entries(d.tags).filter(([k]) => !k.startsWith("_")))),
      kvTable("Latest metrics", d.metrics)),
    files, snapshot, children,
    h("div", { class: "cols" },
      kvTable("Environment and runtime", d.runtime),
      kvTable("Definition", { ...d.definition, snapshot: d.snapshot_id }))
  );
  renderMetrics();
  await Promise.all([loadLogs().then(tailLog), loadFiles(), loadSnapshot(), loadChildren(), loadSystem()]);

  // Live: bounded polling while the run is not finished (new log bytes, fresh chart buckets).
  while (!d.terminal && alive()) {
    await new Promise((r) => setTimeout(r, 1500));
    if (!alive()) return;
    d = await get<Details>(base);
    renderHead();
    renderMetrics();
    await Promise.all([...chartMap.values()].map((c) => c.refresh()).concat(loadSystem()));
    // A run opened while it prepares has only its system logs; the user log comes when it starts.
    if (!logSel.value || (!logPicked && !logSel.value.includes("std_log"))) await loadLogs();
    await tailLog();
    if (d.terminal) await Promise.all([loadFiles(), loadChildren(), tailLog()]);
  }
};

export function renderValue(kind: string, points: { value: unknown; step: number }[], base: string): Node {
  const last = points[points.length - 1]?.value;
  if (kind === "image") {
    return h("div", { class: "images" }, ...points.slice(-4).map((p) => h("img", { src: `api/${base}/file?${qs({ path: String(p.value) })}`, alt: `image ${String(p.value)}`, loading: "lazy" })));
  }
  if ((kind === "table" || kind === "row") && points.length) {
    const rows: Record<string, unknown>[] = [];
    for (const p of points) {
      const v = p.value as Record<string, unknown>;
      if (kind === "row") rows.push(v);
      else {
        const cols = Object.keys(v);
        const n = Math.max(...cols.map((c) => (Array.isArray(v[c]) ? (v[c] as unknown[]).length : 1)));
        for (let i = 0; i < n; i++) rows.push(Object.fromEntries(cols.map((c) => [c, Array.isArray(v[c]) ? (v[c] as unknown[])[i] : v[c]])));
      }
    }
    const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
    return h("table", { class: "grid" }, h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, ...rows.slice(0, 200).map((r) => h("tr", {}, ...cols.map((c) => h("td", {}, fmtValue(r[c])))))));
  }
  return h("p", {}, fmtValue(last));
}
