// trainyard studio: hash routes → pages. Each page renders into <main> and may poll while `alive()`.
import "./style.css";
import { ApiError, get, post, setCsrf } from "./api";
import { h } from "./dom";
import { comparePage, endpointsPage, environmentsPage, membersPage, modelsPage, sweepPage } from "./pages_more";
import { experimentsPage, runPage, runsPage } from "./pages_runs";

export type Page = (ws: string, params: URLSearchParams, main: HTMLElement, id: string | undefined, alive: () => boolean, role: string) => Promise<void>;

interface Session { user: string; csrf: string; needs_login: boolean; workspaces: { name: string; role: string }[] }

const main = document.getElementById("main")!;
const nav = document.getElementById("nav")!;
const who = document.getElementById("who")!;
let session: Session | null = null;
let generation = 0;

const ROUTES: [RegExp, Page][] = [
  [/^experiments$/, experimentsPage],
  [/^runs$/, runsPage],
  [/^runs\/([^/]+)$/, runPage],
  [/^compare$/, comparePage],
  [/^sweeps\/([^/]+)$/, sweepPage],
  [/^models$/, modelsPage],
  [/^endpoints$/, endpointsPage],
  [/^environments$/, environmentsPage],
  [/^members$/, membersPage],
];

function loginPage(message = ""): void {
  const token = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const msg = h("p", { role: "alert" }, message);
  const form = h("form", { class: "login" }, h("h1", {}, "Log in to trainyard studio"), h("label", { for: "token" }, "API token (trainyard token create)"), token, h("button", { type: "submit" }, "Log in"), msg);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    try { await post("login", { token: token.value }); session = null; location.hash = "#/"; await route(); }
    catch (e) { msg.textContent = (e as Error).message; }
  });
  nav.replaceChildren();
  who.replaceChildren();
  main.replaceChildren(form);
  token.focus();
}

async function ensureSession(): Promise<Session | null> {
  if (session) return session;
  try {
    const s = await get<Session & { user: string | null }>("session");
    if (!s.user) { loginPage(); return null; }
    session = s as Session;
    setCsrf(session.csrf);
    return session;
  }
  catch (e) { if (e instanceof ApiError && e.status === 401) { loginPage(); return null; } throw e; }
}

function renderNav(ws: string, role: string): void {
  const links: [string, string][] = [["experiments", "Experiments"], ["runs", "Runs"], ["models", "Models"], ["endpoints", "Endpoints"], ["environments", "Environments"]];
  if (role === "admin") links.push(["members", "Members"]);
  const here = location.hash.split("?")[0];
  nav.replaceChildren(...links.map(([p, label]) => h("a", { href: `#/w/${encodeURIComponent(ws)}/${p}`, "aria-current": here.endsWith(`/${p}`) ? "page" : undefined }, label)));
}

async function route(): Promise<void> {
  const mine = ++generation;
  const alive = () => mine === generation;
  const s = await ensureSession();
  if (!s || !alive()) return;
  const logout = s.needs_login ? h("button", { type: "button", class: "link" }, "Log out") : null;
  logout?.addEventListener("click", async () => { await post("logout"); session = null; loginPage(); });
  who.replaceChildren(s.user, " ", logout || "");
  const [path, query] = location.hash.replace(/^#\/?/, "").split("?");
  const params = new URLSearchParams(query || "");
  const m = /^w\/([^/]+)\/?(.*)$/.exec(path);
  if (!m) {
    if (s.workspaces.length === 1) { location.replace(`#/w/${encodeURIComponent(s.workspaces[0].name)}/experiments`); return; }
    nav.replaceChildren();
    main.replaceChildren(h("h1", {}, "Workspaces"), s.workspaces.length ? h("ul", {}, ...s.workspaces.map((w) => h("li", {}, h("a", { href: `#/w/${encodeURIComponent(w.name)}/experiments` }, w.name), ` (${w.role})`))) : h("p", {}, "You have no role in any workspace yet: ask a workspace admin."));
    return;
  }
  const ws = decodeURIComponent(m[1]);
  const role = s.workspaces.find((w) => w.name === ws)?.role || "";
  renderNav(ws, role);
  const rest = m[2] || "experiments";
  for (const [re, page] of ROUTES) {
    const hit = re.exec(rest);
    if (!hit) continue;
    main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
    try { await page(ws, params, main, hit[1] ? decodeURIComponent(hit[1]) : undefined, alive, role); }
    catch (e) {
      if (!alive()) return;
      if (e instanceof ApiError && e.status === 401) { session = null; loginPage("Your session ended; log in again."); return; }
      main.replaceChildren(h("h1", {}, "Cannot show this page"), h("p", { role: "alert" }, e instanceof Error ? e.message : String(e)));
    }
    return;
  }
  main.replaceChildren(h("h1", {}, "Not found"), h("p", {}, `No page ${rest}.`));
}

window.addEventListener("hashchange", () => void route());
void route();
