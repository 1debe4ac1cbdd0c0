// The API client. The token lives in this tab's sessionStorage and is only ever sent as a
// bearer header: no cookie (nothing for another site to ride on), never in a URL (URLs end up
// in logs and histories).

const KEY = "pipeguard.token";

export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

export function token() {
  return sessionStorage.getItem(KEY);
}

export function setToken(t) {
  sessionStorage.setItem(KEY, t);
}

export function forget() {
  sessionStorage.removeItem(KEY);
}

export function authHeaders() {
  return { Authorization: `Bearer ${token()}` };
}

/** Calls the API; resolves to the JSON answer, or throws an ApiError with the server's message. */
export async function api(path, { method = "GET", body, signal } = {}) {
  const headers = { ...authHeaders(), Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await fetch(path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal,
    credentials: "omit",
    cache: "no-store",
  });
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const message = data?.message || `${resp.status} ${resp.statusText}`;
    const err = new ApiError(resp.status, data?.error || "error", message);
    if (resp.status === 401) window.dispatchEvent(new CustomEvent("pipeguard:unauthorized"));
    throw err;
  }
  return data;
}

/** A query string from an object, skipping empty values. */
export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, v);
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}
