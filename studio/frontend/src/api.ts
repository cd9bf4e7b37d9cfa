// The studio's JSON API (relative URLs: the app may be served at / or /studio/).
export class ApiError extends Error {
  constructor(public status: number, public code: string, message: string) {
    super(message);
  }
}

let csrf = "";
export function setCsrf(token: string): void {
  csrf = token;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET") headers["X-CSRF-Token"] = csrf;
  const resp = await fetch(`api/${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    credentials: "same-origin",
  });
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const err = (data && data.error) || {};
    throw new ApiError(resp.status, err.code || "ERROR", err.message || resp.statusText);
  }
  return data as T;
}

export const get = <T>(path: string) => call<T>("GET", path);
export const post = <T>(path: string, body?: unknown) => call<T>("POST", path, body ?? {});
export const put = <T>(path: string, body?: unknown) => call<T>("PUT", path, body ?? {});

export interface RunRow {
  run_id: string;
  number: number;
  display_name: string | null;
  experiment: string;
  experiment_id: number;
  run_type: string;
  status: string;
  parent_run_id: string | null;
  target: string | null;
  created_at: number;
  start_time: number | null;
  end_time: number | null;
  duration: number | null;
  user: string | null;
  tags: Record<string, string>;
  properties: Record<string, string>;
  metrics: Record<string, number | null>;
}

export interface Series {
  count: number;
  downsampled: boolean;
  x: (number | null)[];
  y: (number | null)[];
  min: (number | null)[];
  max: (number | null)[];
}

export function qs(params: Record<string, string | number | boolean | string[] | undefined>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === "") continue;
    if (Array.isArray(v)) v.forEach((x) => u.append(k, x));
    else u.append(k, String(v));
  }
  return u.toString();
}
