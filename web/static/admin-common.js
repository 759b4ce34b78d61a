// Shared pieces of the admin console: state, DOM helpers, field errors, the preview panel, diff lines.
import { api } from "./api.js";
import { serverText, t } from "./admin-i18n.js";

export const $ = (id) => document.getElementById(id);

/** What the console knows: the caller, what their role may do, and the policy lists it has loaded. */
export const state = {
  me: null,
  can: { read: false, edit: false, audit: false },
  departments: [],
  users: [],
  groups: [],
  rules: [],
  attributes: {}, // what the pickers offer (GET /api/admin/camera-attributes)
  reload: async () => {}, // set by admin.js: reload every list after a change
  // What this console changed itself, so that its own policy.changed events are not news.
  ownRevisions: new Set(),
  ownChangeAt: 0, // user changes make no revision: the event right after one is this console's
  knownRevision: 0,
};

/** Note that this console just changed the policy (`revision` when the change made one). */
export function markOwnChange(revision) {
  if (revision) {
    state.ownRevisions.add(revision);
    state.knownRevision = Math.max(state.knownRevision, revision);
  } else {
    state.ownChangeAt = Date.now();
  }
}

/** Whether a policy.changed event (its revision) reports someone else's change. */
export function changedElsewhere(revision) {
  const fresh = revision > state.knownRevision;
  state.knownRevision = Math.max(state.knownRevision, revision);
  if (state.ownRevisions.has(revision)) return false;
  return fresh || Date.now() - state.ownChangeAt > 3000;
}

/** An element with attributes and children (strings become text: nothing is parsed as HTML). */
export function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === "class") e.className = v;
    else if (k === "dataset") Object.assign(e.dataset, v);
    else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) if (c != null && c !== false) e.append(c instanceof Node ? c : String(c));
  return e;
}

/** A table: `columns` are [label key, row => cell content]; `rowAttrs(row)` sets attributes of each <tr>. */
export function fillTable(table, columns, rows, rowAttrs = () => ({})) {
  table.replaceChildren(
    el("thead", {}, el("tr", {}, columns.map(([label]) => el("th", {}, label ? t(label) : "")))),
    el(
      "tbody",
      {},
      rows.length
        ? rows.map((r) => el("tr", rowAttrs(r), columns.map(([, cell]) => el("td", {}, cell(r)))))
        : el("tr", {}, el("td", { colspan: columns.length, class: "empty" }, t("no_rows"))),
    ),
  );
}

/** Fetch JSON; returns {ok, status, data}. Errors keep FastAPI's `detail` as `data.detail`. */
export async function call(path, method = "GET", body = undefined) {
  const opts = { method };
  if (body !== undefined) {
    opts.headers = { "Content-Type": "application/json" };
    opts.body = JSON.stringify(body);
  }
  const r = await api(path, opts);
  let data = null;
  try {
    data = await r.json();
  } catch (_) {
    data = null;
  }
  return { ok: r.ok, status: r.status, data };
}

/** Remove the field errors a form shows. */
export function clearErrors(form) {
  for (const e of form.querySelectorAll(".field-error")) e.remove();
  for (const e of form.querySelectorAll("[aria-invalid]")) e.removeAttribute("aria-invalid");
  const top = form.querySelector("[data-field-error]");
  if (top) top.textContent = "";
}

// "rule.subject" -> the label of "rule.subject", else "subject"; "group.filter.kind" -> "filter.kind".
function labelFor(form, field) {
  const parts = String(field || "").split(".");
  for (let i = 0; i < parts.length; i++) {
    const name = parts.slice(i).join(".");
    const label = form.querySelector(`[data-field="${CSS.escape(name)}"]`);
    if (label && !label.hidden) return label;
  }
  return null;
}

/** Show a server error next to the field it names (or at the top of the form); returns the text. */
export function showErrors(form, res) {
  clearErrors(form);
  const d = res.data && res.data.detail;
  const list = Array.isArray(d) ? d : [{ field: "", message: statusText(res, d) }];
  const loose = [];
  for (const e of list) {
    const original = e.message || e.msg || JSON.stringify(e);
    const message = serverText(original);
    const label = labelFor(form, e.field);
    if (label) {
      label.append(el("span", { class: "field-error", role: "alert", title: original }, message));
      const input = label.querySelector("input, select, textarea");
      if (input) input.setAttribute("aria-invalid", "true");
    } else {
      loose.push(e.field ? `${e.field}: ${message}` : message);
    }
  }
  const top = form.querySelector("[data-field-error]");
  if (top) top.textContent = loose.join("; ");
  return list.map((e) => serverText(e.message || e.msg)).join("; ");
}

function statusText(res, detail) {
  if (res.status === 403) return t("forbidden");
  if (res.status === 404) return typeof detail === "string" ? serverText(detail) : t("not_found");
  return typeof detail === "string" ? serverText(detail) : t("error");
}

/** A short message at the top of the panes. */
export function flash(text, bad = false) {
  const f = $("flash");
  f.textContent = text;
  f.classList.toggle("bad", bad);
}

/** ISO time (UTC) from a datetime-local value, or null. */
export function isoFromLocal(v) {
  return v ? new Date(v).toISOString() : null;
}

/** A datetime-local value for an ISO time. */
export function localFromIso(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function when(iso) {
  return iso ? new Date(iso).toLocaleString(document.documentElement.lang) : "";
}

export function username(id) {
  const u = state.users.find((x) => x.id === id);
  return u ? u.username : `#${id}`;
}

export function deptName(id) {
  const d = state.departments.find((x) => x.id === id);
  return d ? `${d.name}` : id;
}

/** One diff entry (history and preview) as a line of text and its kind (add, remove, update). */
export function changeLine(c) {
  const sign = { add: "+", remove: "−", update: "~" }[c.op] || c.op;
  const r = c.row || {};
  let text;
  if (c.kind === "rule" && r.ptype === "p") {
    const win = r.v4 ? ` [${windowText(r.v4)}]` : "";
    const tag = r.v5 ? ` (${r.v5})` : "";
    text = `${t(r.v3)} ${r.v0} → ${r.v1} · ${t("act_" + r.v2)}${win}${tag}`;
  } else if (c.kind === "rule") {
    text = `${r.v0} ∈ ${r.v1}`;
  } else if (c.kind === "membership") {
    text = `${username(r.user_id)} ∈ dept:${r.department_id} (${r.role})`;
  } else if (c.kind === "department") {
    const old = c.old ? ` ← ${c.old.name}${c.old.parent_id ? " / " + c.old.parent_id : ""}` : "";
    text = `dept:${r.id} ${r.name}${r.parent_id ? " / " + r.parent_id : ""}${old}`;
  } else if (c.kind === "group") {
    const f = r.dynamic ? " " + JSON.stringify(r.filter) : "";
    text = `group:${r.id} ${r.name}${f}`;
  } else if (c.kind === "evidence_lock") {
    // A lock of recordings (history only: a rollback does not lift it).
    const f = (s) => new Date(s * 1000).toLocaleString(document.documentElement.lang);
    text = `${t("evidence_lock")} #${r.id} cam:${r.camera_id} ${f(r.start)} – ${f(r.end)}`;
  } else {
    text = JSON.stringify(r);
  }
  return { text: `${sign} ${text}`, op: c.op };
}

function windowText(w) {
  const [lo, hi] = w.split("..");
  const f = (s) => (s ? new Date(Number(s) * 1000).toLocaleString(document.documentElement.lang) : "…");
  return `${f(lo)} – ${f(hi)}`;
}

export function changeList(changes) {
  return el(
    "ul",
    { class: "diff" },
    changes.map((c) => {
      const { text, op } = changeLine(c);
      return el("li", { class: `diff-${op}` }, text);
    }),
  );
}

// -- the preview panel --------------------------------------------------------------------------
let pending = null;

/** Ask the server what `proposal` (a /api/acl/preview body) would do; show it with a confirm button
 * that runs `commit()` (a call() promise). Errors go next to the fields of `form`. */
export async function previewThen(form, proposal, commit, confirmKey = "confirm_save") {
  if (form) clearErrors(form);
  hidePreview();
  // A change for everyone is compared for every user: it can take a few seconds at district scale.
  const button = form && form.querySelector("button[type=submit]");
  if (button) button.disabled = true;
  flash(t("computing"));
  let res;
  try {
    res = await call("/api/acl/preview", "POST", proposal);
  } finally {
    if (button) button.disabled = false;
    flash("");
  }
  if (!res.ok) {
    if (form) showErrors(form, res);
    else flash(showErrorsText(res), true);
    return false;
  }
  pending = { form, commit };
  // What is confirmed is what was previewed: editing the form afterwards drops the preview.
  if (form) form.addEventListener("input", hidePreview, { once: true });
  $("preview-body").replaceChildren(renderEffect(res.data));
  $("preview-error").textContent = "";
  $("preview-confirm").textContent = t(confirmKey);
  $("preview").hidden = false;
  return true;
}

function showErrorsText(res) {
  const d = res.data && res.data.detail;
  if (Array.isArray(d)) return d.map((e) => (e.field ? `${e.field}: ${serverText(e.message)}` : serverText(e.message))).join("; ");
  return serverText(statusText(res, d));
}

export function hidePreview() {
  pending = null;
  $("preview").hidden = true;
}

export async function confirmPreview() {
  if (!pending) return;
  const { form, commit } = pending;
  $("preview-confirm").disabled = true;
  try {
    const res = await commit();
    if (!res.ok) {
      const text = form ? showErrors(form, res) : showErrorsText(res);
      $("preview-error").textContent = text;
      return;
    }
    markOwnChange(res.data && res.data.revision);
    hidePreview();
    if (form) form.reset();
    flash(res.data && res.data.revision ? t("saved", res.data.revision) : t("done"));
    await state.reload();
  } finally {
    $("preview-confirm").disabled = false;
  }
}

function renderEffect(p) {
  const box = el("div", { class: "effect" });
  let any = false;
  for (const e of p.effects) {
    if (!e.users_gaining && !e.users_losing) continue;
    any = true;
    const act = t("for_action", t("act_" + e.action));
    const lines = [];
    for (const d of e.departments) {
      if (d.users_gaining) lines.push(["gain", t("effect_gain", d.users_gaining, d.name, d.cameras_gained)]);
      if (d.users_losing) lines.push(["lose", t("effect_lose", d.users_losing, d.name, d.cameras_lost)]);
    }
    if (e.departments.length !== 1) {
      if (e.users_gaining) lines.push(["gain", t("effect_gain_all", e.users_gaining, e.cameras_gained)]);
      if (e.users_losing) lines.push(["lose", t("effect_lose_all", e.users_losing, e.cameras_lost)]);
    }
    box.append(
      el(
        "div",
        { class: "effect-action", dataset: { action: e.action } },
        lines.map(([k, text]) => el("p", { class: `effect-line effect-${k}` }, act, text)),
        el(
          "details",
          {},
          el("summary", {}, `${t("users_detail")} (${e.users_total})`),
          el(
            "ul",
            { class: "plain" },
            e.users.map((u) =>
              el(
                "li",
                {},
                `${u.username}: `,
                u.gained ? `${t("gained")} ${u.gained} (${u.gained_sample.join(", ")}${u.gained > u.gained_sample.length ? "…" : ""}) ` : "",
                u.lost ? `${t("lost")} ${u.lost} (${u.lost_sample.join(", ")}${u.lost > u.lost_sample.length ? "…" : ""})` : "",
              ),
            ),
          ),
        ),
      ),
    );
  }
  if (!any) box.append(el("p", { class: "effect-line effect-none" }, t("no_effect")));
  box.append(el("p", { class: "note" }, t("writes", p.changes_total)), changeList(p.changes));
  return box;
}
