// Compare, sweeps, models, endpoints, environments, compute targets, members.
import { ApiError, get, post, put, qs, type RunRow } from "./api";
import { metricChart } from "./chart";
import { fmtTime, fmtValue, h, statusBadge } from "./dom";
import type { Page } from "./main";

const enc = encodeURIComponent;

/** A parallel-coordinates plot (SVG): one axis per column, one line per row. */
export function parallel(rows: { id: string; values: Record<string, number | null> }[], axes: string[]): HTMLElement {
  const W = 760, H = 260, pad = 30;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", `Parallel coordinates of ${axes.join(", ")}`);
  svg.classList.add("parallel");
  if (axes.length < 2) return h("p", { class: "muted" }, "Parallel coordinates need two numeric columns.");
  const step = (W - 2 * pad) / (axes.length - 1);
  const ranges = axes.map((a) => {
    const vs = rows.map((r) => r.values[a]).filter((v): v is number => typeof v === "number");
    const lo = Math.min(...vs), hi = Math.max(...vs);
    return [lo, hi === lo ? lo + 1 : hi];
  });
  const y = (i: number, v: number) => H - pad - ((v - ranges[i][0]) / (ranges[i][1] - ranges[i][0])) * (H - 2 * pad);
  rows.forEach((r, k) => {
    const pts = axes.map((a, i) => (typeof r.values[a] === "number" ? `${pad + i * step},${y(i, r.values[a] as number)}` : null)).filter(Boolean);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", `hsl(${(k * 47) % 360} 70% 45%)`);
    line.setAttribute("stroke-width", "1.5");
    const t = document.createElementNS(ns, "title");
    t.textContent = r.id;
    line.append(t);
    svg.append(line);
  });
  axes.forEach((a, i) => {
    const x = pad + i * step;
    const l = document.createElementNS(ns, "line");
    Object.entries({ x1: x, x2: x, y1: pad, y2: H - pad, stroke: "#555" }).forEach(([k, v]) => l.setAttribute(k, String(v)));
    const t = document.createElementNS(ns, "text");
    Object.entries({ x, y: pad - 10, "text-anchor": "middle", "font-size": 11 }).forEach(([k, v]) => t.setAttribute(k, String(v)));
    t.textContent = a;
    svg.append(l, t);
  });
  return h("div", { class: "card" }, h("h3", {}, "Parallel coordinates"), svg as unknown as Node);
}

function numeric(v: unknown): number | null {
  const n = typeof v === "number" ? v : typeof v === "string" && v.trim() !== "" ? Number(v) : NaN;
  return Number.isFinite(n) ? n : null;
}

export const comparePage: Page = async (ws, params, main) => {
  const ids = (params.get("runs") || "").split(",").filter(Boolean);
  const rows: RunRow[] = [];
  for (const id of ids) {
    const r = await get<{ runs: RunRow[] }>(`w/${enc(ws)}/runs?${qs({ q: id, children: 1, limit: 5 })}`);
    const found = r.runs.find((x) => x.run_id === id);
    if (found) rows.push(found);
  }
  const params_ = [...new Set(rows.flatMap((r) => Object.keys(r.properties)))].filter((k) => !k.startsWith("_") && k !== "hyperparameters").sort();
  const metrics = [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort();
  const diffRow = (label: string, vals: unknown[]) => {
    const differs = new Set(vals.map((v) => JSON.stringify(v))).size > 1;
    return h("tr", { class: differs ? "differs" : "" }, h("th", { scope: "row" }, label), ...vals.map((v) => h("td", {}, fmtValue(v))));
  };
  const table = h("table", { class: "grid", "aria-label": "Differences" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, ""), ...rows.map((r) => h("th", { scope: "col" }, h("a", { href: `#/w/${enc(ws)}/runs/${enc(r.run_id)}` }, r.display_name || r.run_id))))),
    h("tbody", {}, diffRow("status", rows.map((r) => r.status)), ...params_.map((p) => diffRow(p, rows.map((r) => r.properties[p]))), ...metrics.map((m) => diffRow(m, rows.map((r) => r.metrics[m])))));
  const charts = h("div", { class: "charts" });
  main.replaceChildren(h("h1", {}, `Compare ${rows.length} runs`), h("section", { class: "card" }, h("h3", {}, "Parameters and metrics"), h("div", { class: "scroll" }, table)), charts,
    parallel(rows.map((r) => ({ id: r.run_id, values: Object.fromEntries([...params_, ...metrics].map((k) => [k, numeric(r.properties[k] ?? r.metrics[k])])) })), [...params_, ...metrics].filter((k) => rows.some((r) => numeric(r.properties[k] ?? r.metrics[k]) !== null)).slice(0, 10)));
  const labels = Object.fromEntries(rows.map((r) => [r.run_id, r.display_name || r.run_id]));
  for (const m of metrics) {
    const c = metricChart({ ws, runs: rows.map((r) => r.run_id), labels, metric: m });
    charts.append(c.el);
    void c.refresh();
  }
};

interface SweepRow extends RunRow { hyperparameters: Record<string, unknown>; best_primary_metric: number | null }
interface Best { run_id: string; value: number }

export const sweepPage: Page = async (ws, _params, main, runId) => {
  const s = await get<{ run: RunRow; primary_metric: string; goal: string; children: SweepRow[]; best: Best | null; best_so_far: (Best & { after: string })[]; decisions: string[] }>(`w/${enc(ws)}/sweeps/${enc(runId!)}`);
  const pm = s.primary_metric;
  const hpKeys = [...new Set(s.children.flatMap((c) => Object.keys(c.hyperparameters)))].sort();
  const runLink = (id: string) => h("a", { href: `#/w/${enc(ws)}/runs/${enc(id)}` }, id);
  const bestLabel = `best ${pm || "primary metric"} (${s.goal})`;
  const table = h("table", { class: "grid", "aria-label": "Child runs" },
    h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Child"), h("th", { scope: "col" }, "Status"), ...hpKeys.map((k) => h("th", { scope: "col" }, k)), h("th", { scope: "col" }, `${pm || "primary metric"} (last)`), h("th", { scope: "col" }, bestLabel))),
    h("tbody", {}, ...s.children.map((c) => h("tr", { class: s.best && c.run_id === s.best.run_id ? "best" : "" }, h("td", {}, runLink(c.run_id)), h("td", {}, statusBadge(c.status)), ...hpKeys.map((k) => h("td", {}, fmtValue(c.hyperparameters[k]))), h("td", {}, fmtValue(c.metrics[pm])), h("td", {}, fmtValue(c.best_primary_metric))))));
  const charts = h("div", { class: "charts" });
  main.replaceChildren(
    h("h1", {}, `Sweep ${s.run.display_name || s.run.run_id} `, statusBadge(s.run.status)),
    h("p", { class: "sweep-best" }, `Primary metric: ${pm} (${s.goal}) · ${s.children.length} children · ${bestLabel}: `, s.best ? h("a", { href: `#/w/${enc(ws)}/runs/${enc(s.best.run_id)}` }, `${s.best.run_id} = ${fmtValue(s.best.value)}`) : "—"),
    h("section", { class: "card" }, h("h3", {}, "Children"), h("div", { class: "scroll" }, table)),
    h("section", { class: "card" }, h("h3", {}, `Best ${pm || "primary metric"} so far (${s.goal})`),
      s.best_so_far.length ? h("ol", { class: "best-so-far" }, ...s.best_so_far.map((b) => h("li", {}, `after ${b.after} ended: `, runLink(b.run_id), ` = ${fmtValue(b.value)}`))) : h("p", { class: "muted" }, "No child has ended with a value yet.")),
    charts,
    parallel(s.children.map((c) => ({ id: c.run_id, values: Object.fromEntries([...hpKeys.map((k) => [k, numeric(c.hyperparameters[k])]), [pm, numeric(c.metrics[pm])]]) })), [...hpKeys, pm]),
    h("section", { class: "card" }, h("h3", {}, "Early-termination decisions"), s.decisions.length ? h("pre", { class: "log" }, s.decisions.join("\n")) : h("p", { class: "muted" }, "None."))
  );
  if (pm && s.children.length) {
    const c = metricChart({ ws, runs: s.children.slice(0, 50).map((c) => c.run_id), metric: pm });
    charts.append(c.el);
    void c.refresh();
  }
};

function listTable(label: string, cols: string[], rows: Node[][]): HTMLElement {
  if (!rows.length) return h("p", { class: "muted" }, `No ${label.toLowerCase()} yet.`);
  return h("div", { class: "scroll" }, h("table", { class: "grid", "aria-label": label }, h("thead", {}, h("tr", {}, ...cols.map((c) => h("th", { scope: "col" }, c)))), h("tbody", {}, ...rows.map((r) => h("tr", {}, ...r.map((c) => h("td", {}, c)))))));
}
const text = (v: unknown) => document.createTextNode(fmtValue(v));

export const modelsPage: Page = async (ws, _p, main) => {
  const { models } = await get<{ models: Record<string, any>[] }>(`w/${enc(ws)}/models`);
  main.replaceChildren(h("h1", {}, "Models"), listTable("Models", ["Name", "Version", "Framework", "Tags", "Run (lineage)", "Created"], models.map((m) => [
    text(m.name), text(m.version), text(m.framework), text(Object.entries(m.tags || {}).map(([k, v]) => `${k}=${v}`).join(", ")),
    m.run_id ? h("a", { href: `#/w/${enc(ws)}/runs/${enc(m.run_id)}` }, `${m.experiment_name || ""} / ${m.run_id}`) : text(null), text(fmtTime(m.created_at))])));
};

export const endpointsPage: Page = async (ws, _p, main, _id, _alive, role) => {
  const { endpoints } = await get<{ endpoints: Record<string, any>[] }>(`w/${enc(ws)}/endpoints`);
  const cards = endpoints.map((e) => {
    const logs = h("pre", { class: "log" });
    const showLogs = h("button", { type: "button" }, "Show logs");
    showLogs.addEventListener("click", async () => { logs.textContent = (await get<{ logs: string }>(`w/${enc(ws)}/endpoints/${enc(e.name)}/logs`)).logs; });
    const id = `score-${e.name}`;
    const body = h("textarea", { id, rows: 4, cols: 40 }, '{"data": [[0]]}');
    const out = h("pre", { class: "result", "aria-live": "polite" });
    const form = h("form", { class: "score" }, h("label", { for: id }, "JSON body to score"), body, h("button", { type: "submit", disabled: role === "reader" }, "Score"), out);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      try { out.textContent = JSON.stringify((await post<{ result: unknown }>(`w/${enc(ws)}/endpoints/${enc(e.name)}/score`, JSON.parse(body.value))).result, null, 2); }
      catch (err) { out.textContent = err instanceof Error ? err.message : String(err); }
    });
    return h("section", { class: "card" }, h("h3", {}, e.name, " ", statusBadge(e.state)), h("p", {}, "Scoring URI: ", h("code", {}, e.scoring_uri || "—")), form, showLogs, logs);
  });
  main.replaceChildren(h("h1", {}, "Endpoints"), ...(cards.length ? cards : [h("p", { class: "muted" }, "No endpoints yet.")]));
};

export const environmentsPage: Page = async (ws, _p, main) => {
  const { environments } = await get<{ environments: Record<string, any>[] }>(`w/${enc(ws)}/environments`);
  const { computes } = await get<{ computes: Record<string, any>[] }>(`w/${enc(ws)}/computes`);
  main.replaceChildren(
    h("h1", {}, "Environments and compute"),
    h("h2", {}, "Environments"),
    listTable("Environments", ["Name", "Version", "Spec hash", "Created", "Spec"], environments.map((e) => [text(e.name), text(e.version), text(String(e.spec_hash).slice(0, 12)), text(fmtTime(e.created_at)), h("details", {}, h("summary", {}, "spec"), h("pre", {}, JSON.stringify(e.spec, null, 2)))])),
    h("h2", {}, "Compute targets"),
    listTable("Compute targets", ["Name", "Type", "Config", "Created"], computes.map((c) => [text(c.name), text(c.target_type), text(JSON.stringify(c.config)), text(fmtTime(c.created_at))]))
  );
};

export const membersPage: Page = async (ws, _p, main, _id, _alive, role) => {
  if (role !== "admin") {
    main.replaceChildren(h("h1", {}, "Members"), h("p", { role: "alert" }, `Managing members needs the admin role; you are ${role || "no member"} of ${ws}.`));
    return;
  }
  try {
    const { members } = await get<{ members: { user: string; role: string }[] }>(`w/${enc(ws)}/members`);
    const user = h("input", { id: "m-user", required: true });
    const sel = h("select", { id: "m-role" }, ...["reader", "contributor", "admin"].map((r) => h("option", { value: r }, r)));
    const msg = h("p", { "aria-live": "polite" });
    const form = h("form", { class: "filters" }, h("label", { for: "m-user" }, "User "), user, h("label", { for: "m-role" }, " Role "), sel, h("button", { type: "submit" }, "Set role"), msg);
    form.addEventListener("submit", async (ev) => { ev.preventDefault(); try { await put(`w/${enc(ws)}/members/${enc(user.value)}`, { role: sel.value }); location.reload(); } catch (e) { msg.textContent = (e as Error).message; } });
    main.replaceChildren(h("h1", {}, "Members"), listTable("Members", ["User", "Role"], members.map((m) => [text(m.user), text(m.role)])), form);
  } catch (e) {
    main.replaceChildren(h("h1", {}, "Members"), h("p", { role: "alert" }, e instanceof ApiError ? e.message : String(e)));
  }
};
