// Reading the policy and its record: explain views, policy history with rollback, the audit log.
import { AUDIT_KINDS, auditKind, t } from "./admin-i18n.js";
import {
  $,
  call,
  changeList,
  clearErrors,
  el,
  fillTable,
  isoFromLocal,
  previewThen,
  showErrors,
  state,
  when,
} from "./admin-common.js";

const PAGE = 50;

// -- explain -------------------------------------------------------------------------------------
function ruleText(r) {
  return `#${r.id} ${t(r.effect)} ${r.subject} → ${r.target} · ${t("act_" + r.action)}${r.tag ? ` (${r.tag})` : ""}`;
}

async function explainCamera(ev) {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  const cam = f.elements.camera_id.value.trim();
  const out = $("explain-camera-result");
  out.replaceChildren();
  if (!cam) return showErrors(f, { data: { detail: [{ field: "camera_id", message: "?" }] } });
  const q = new URLSearchParams({ action: f.elements.action.value });
  const res = await call(`/api/admin/explain/camera/${encodeURIComponent(cam)}?${q}`);
  if (!res.ok) return showErrors(f, { ...res, data: notFoundAs(res, "camera_id") });
  const d = res.data;
  const who = (u) =>
    el("li", { dataset: { user: String(u.user_id) } }, el("b", {}, u.username), " — ", [because(u.because), u.rules.map(ruleText).join("; ")].filter(Boolean).join(": "));
  out.append(
    el("h3", {}, `${cam} · ${t("act_" + d.action)}`),
    d.users.length ? el("ul", { class: "plain who-can" }, d.users.map(who)) : el("p", { class: "note" }, t("nobody")),
  );
  if (d.blocked.length) out.append(el("h3", {}, t("blocked")), el("ul", { class: "plain blocked" }, d.blocked.map(who)));
}

// The server's reasons, in the console's language.
function because(text) {
  const known = {
    "system role admin": "system_admin",
    "the account is deactivated": "deactivated",
    "a deny rule overrides": "deny_overrides",
    "no rule allows it": "no_rule",
  };
  return text ? t(known[text] || text) : "";
}

// A 404 names the thing the form asked about (a plain string from the server).
function notFoundAs(res, field) {
  if (res.status === 404 && res.data && typeof res.data.detail === "string") {
    return { detail: [{ field, message: res.data.detail }] };
  }
  return res.data;
}

async function explainUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  clearErrors(f);
  const uid = f.elements.user_id.value;
  const out = $("explain-user-result");
  out.replaceChildren();
  const q = new URLSearchParams({ action: f.elements.action.value, limit: "500" });
  const res = await call(`/api/admin/explain/user/${encodeURIComponent(uid)}?${q}`);
  if (!res.ok) return showErrors(f, { ...res, data: notFoundAs(res, "user_id") });
  const d = res.data;
  const depts = d.departments.length ? d.departments.join(", ") : t("no_department");
  out.append(
    el("h3", {}, `${d.username} · ${t("role_" + d.role)} · ${depts}`),
    el(
      "p",
      { class: "total" },
      d.because === "the account is deactivated" ? because(d.because) : t("total_visible", d.total),
      d.because === "system role admin" ? ` · ${because(d.because)}` : "",
      d.total > d.cameras.length ? t("shown_first", d.cameras.length) : "",
    ),
  );
  fillTable(
    out.appendChild(el("table", { class: "grid-table" })),
    [
      ["camera", (c) => c.camera_id],
      ["because", (c) => c.rules.map(ruleText).join("; ")],
    ],
    d.cameras,
    (c) => ({ dataset: { camera: c.camera_id } }),
  );
}

// -- policy history ------------------------------------------------------------------------------
let historyOffset = 0;

export async function loadHistory(more = false) {
  if (!more) historyOffset = 0;
  const res = await call(`/api/admin/revisions?offset=${historyOffset}&limit=${PAGE}`);
  if (!res.ok) return;
  const ol = $("revision-list");
  if (!more) ol.replaceChildren();
  const newest = more ? null : res.data[0]?.id;
  for (const r of res.data) {
    ol.append(
      el(
        "li",
        { dataset: { revision: String(r.id) } },
        el(
          "div",
          { class: "rev-head" },
          el("b", {}, `${t("revision")} ${r.id}`),
          ` · ${when(r.created_at)} · ${r.author}`,
          r.reason ? ` · ${r.reason}` : "",
          state.can.edit && r.id !== newest
            ? el("button", { type: "button", class: "small", onclick: () => rollback(r.id) }, t("rollback"))
            : "",
        ),
        changeList(r.changes),
      ),
    );
  }
  historyOffset += res.data.length;
  $("history-more").hidden = res.data.length < PAGE;
}

function rollback(id) {
  previewThen(
    null,
    { op: "rollback", revision_id: id },
    () => call(`/api/admin/revisions/${id}/rollback`, "POST", { reason: t("rollback_to", id) }),
    "confirm_rollback",
  );
}

// -- audit ---------------------------------------------------------------------------------------
let auditOffset = 0;

function auditParams() {
  const f = $("audit-form").elements;
  const q = new URLSearchParams();
  for (const k of ["kind", "user_id", "camera_id", "incident_id"]) {
    const v = f[k].value.trim();
    if (v) q.set(k, v);
  }
  for (const k of ["since", "until"]) {
    const v = isoFromLocal(f[k].value);
    if (v) q.set(k, v);
  }
  return q;
}

export async function loadAudit(more = false) {
  const f = $("audit-form");
  if (!more) {
    auditOffset = 0;
    clearErrors(f);
  }
  const q = auditParams();
  $("audit-export").href = `/api/audit/export.csv?${q}`;
  q.set("offset", String(auditOffset));
  q.set("limit", String(PAGE));
  fillAuditKinds(); // in the language chosen since
  const res = await call(`/api/audit?${q}`);
  if (!res.ok) return showErrors(f, res);
  const table = $("audit-table");
  const rows = more ? [...(table._rows || []), ...res.data] : res.data;
  table._rows = rows;
  fillTable(
    table,
    [
      ["id", (e) => String(e.id)],
      ["time", (e) => when(e.ts)],
      ["kind", (e) => auditKind(e.kind)],
      ["user", (e) => e.username || (e.user_id != null ? `#${e.user_id}` : "")],
      ["camera", (e) => e.camera_id || ""],
      ["action", (e) => e.action || ""],
      ["incident", (e) => e.incident_id || ""],
      ["address", (e) => e.address || ""],
      ["detail", (e) => e.detail || ""],
    ],
    rows,
    (e) => ({ dataset: { kind: e.kind } }),
  );
  auditOffset += res.data.length;
  $("audit-more").hidden = res.data.length < PAGE;
}

async function verifyChain() {
  const res = await call("/api/audit/verify");
  const p = $("audit-verify-result");
  if (!res.ok) {
    p.textContent = t("error");
    return;
  }
  p.textContent = res.data.ok ? t("chain_ok", res.data.checked) : t("chain_broken", res.data.first_broken_id, res.data.problem);
  p.classList.toggle("bad", !res.data.ok);
}

/** The kind filter offers every kind by its name in the console's language (the value is the kind). */
function fillAuditKinds() {
  $("audit-kinds").replaceChildren(...AUDIT_KINDS.map((k) => el("option", { value: k, label: auditKind(k) })));
}

export function initReview() {
  fillAuditKinds();
  $("explain-camera-form").addEventListener("submit", explainCamera);
  $("explain-user-form").addEventListener("submit", explainUser);
  $("history-more").addEventListener("click", () => loadHistory(true));
  $("audit-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    loadAudit();
  });
  // The export link always carries the filters on screen, even before "search" is pressed.
  $("audit-form").addEventListener("input", () => {
    $("audit-export").href = `/api/audit/export.csv?${auditParams()}`;
  });
  $("audit-more").addEventListener("click", () => loadAudit(true));
  $("audit-verify").addEventListener("click", verifyChain);
}
