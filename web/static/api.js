// Calls to the gateway from the console: same-origin cookie session, CSRF header on state changes.

export function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)liandong_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

let onUnauthorized = null;

/** Called (once per burst) when the gateway answers 401: the login expired or was revoked. */
export function setUnauthorizedHandler(fn) {
  onUnauthorized = fn;
}

/** Tell the app the login is gone (a 401 seen outside api(), e.g. by the WHEP player). */
export function notifyUnauthorized() {
  if (onUnauthorized) onUnauthorized();
}

/** fetch() for the API. A 401 also tells the app, unless `quiet401` (the login form itself). */
export async function api(path, opts = {}) {
  const { quiet401, ...rest } = opts;
  const headers = { ...(rest.headers || {}) };
  if (rest.method && rest.method !== "GET" && rest.method !== "HEAD") headers["X-CSRF-Token"] = csrfToken();
  const r = await fetch(path, { credentials: "same-origin", ...rest, headers });
  if (r.status === 401 && !quiet401) notifyUnauthorized();
  return r;
}

/** The `detail` of an error reply as text (FastAPI: a string, or a list of {field, message}). */
export async function errorDetail(r) {
  try {
    const d = (await r.json()).detail;
    if (typeof d === "string") return d;
    if (Array.isArray(d)) return d.map((e) => (e.field ? `${e.field}: ${e.message}` : e.msg || JSON.stringify(e))).join("; ");
    return d && d.message ? d.message : JSON.stringify(d);
  } catch (_) {
    return r.statusText;
  }
}
