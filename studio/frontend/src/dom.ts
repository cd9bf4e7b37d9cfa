// Tiny DOM helpers: build elements without innerHTML (no injection from run names or logs).
export type Child = Node | string | number | null | undefined | false;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attrs: Record<string, string | number | boolean | EventListener | undefined> = {},
  ...children: Child[]
): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === "function") el.addEventListener(k.replace(/^on/, ""), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children) if (c !== null && c !== undefined && c !== false) el.append(c instanceof Node ? c : String(c));
  return el;
}

export function fmtTime(ts: number | null | undefined): string {
  if (!ts) return "—";
  return new Date(ts * 1000).toLocaleString();
}

export function fmtDuration(s: number | null | undefined): string {
  if (s === null || s === undefined) return "—";
  if (s < 60) return `${s.toFixed(1)} s`;
  if (s < 3600) return `${Math.floor(s / 60)} m ${Math.round(s % 60)} s`;
  return `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} m`;
}

export function fmtValue(v: unknown): string {
  if (v === null || v === undefined) return "—";
  if (typeof v === "number") return Number.isInteger(v) ? String(v) : v.toPrecision(5);
  if (typeof v === "string") return v;
  return JSON.stringify(v);
}

export function statusBadge(status: string): HTMLElement {
  return h("span", { class: `badge st-${status.toLowerCase()}` }, status);
}

export function kvTable(caption: string, data: Record<string, unknown>): HTMLElement {
  const keys = Object.keys(data).sort();
  if (!keys.length) return h("section", { class: "card" }, h("h3", {}, caption), h("p", { class: "muted" }, "None."));
  return h(
    "section",
    { class: "card" },
    h("h3", {}, caption),
    h(
      "table",
      { class: "kv" },
      h("tbody", {}, ...keys.map((k) => h("tr", {}, h("th", { scope: "row" }, k), h("td", {}, fmtValue(data[k])))))
    )
  );
}
