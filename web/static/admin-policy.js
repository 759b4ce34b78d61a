// Editing the policy: departments, users and memberships, camera groups, grant/deny rules, alarm routing.
// Changes that alter who sees what go through the preview panel first; the rest save directly.
import { t } from "./admin-i18n.js";
import {
  $,
  call,
  clearErrors,
  deptName,
  el,
  fillTable,
  flash,
  isoFromLocal,
  localFromIso,
  markOwnChange,
  previewThen,
  showErrors,
  state,
} from "./admin-common.js";

const list = (s) =>
  String(s || "")
    .split(/[,，\n]/)
    .map((x) => x.trim())
    .filter(Boolean);
const enc = encodeURIComponent;
// The attributes a dynamic group selects on (acl.index.DYNAMIC_KEYS).
const FILTER_KEYS = ["area", "station", "kind", "tag", "department"];

function editButton(label, onclick, extra = {}) {
  return state.can.edit ? el("button", { type: "button", class: "small", onclick, ...extra }, t(label)) : "";
}

// -- departments ---------------------------------------------------------------------------------
export function renderDepartments() {
  fillTable(
    $("dept-table"),
    [
      ["id", (d) => d.id],
      ["name", (d) => d.name],
      ["level", (d) => t("level_" + d.level)],
      ["parent", (d) => (d.parent_id ? deptName(d.parent_id) : "")],
      ["area", (d) => d.area || ""],
      ["ptz_priority", (d) => (d.ptz_priority == null ? t("ptz_default") : String(d.ptz_priority))],
      ["members", (d) => String(d.members)],
      [
        state.can.edit ? "actions" : "",
        (d) => [
          editButton("edit", () => editDepartment(d)),
          editButton("delete", () => deleteDepartment(d), { class: "small danger" }),
        ],
      ],
    ],
    state.departments,
    (d) => ({ dataset: { dept: d.id } }),
  );
  const selects = [$("dept-form"), $("membership-form")].filter(Boolean).map((f) => f.querySelector('select[name$="_id"]'));
  for (const sel of selects) {
    const keep = sel.value;
    const first = sel.name === "parent_id" ? [el("option", { value: "" }, t("none"))] : [];
    sel.replaceChildren(...first, ...state.departments.map((d) => el("option", { value: d.id }, `${d.name} (${d.id})`)));
    sel.value = keep;
  }
}

function editDepartment(d) {
  const f = $("dept-form");
  clearErrors(f);
  f.elements.id.value = d.id;
  f.elements.id.readOnly = true;
  f.elements.name.value = d.name;
  f.elements.level.value = d.level;
  f.elements.parent_id.value = d.parent_id || "";
  f.elements.area.value = d.area || "";
  f.elements.ptz_priority.value = d.ptz_priority == null ? "" : String(d.ptz_priority);
  f.querySelector("h2").textContent = `${t("edit")} ${d.id}`;
  f.elements.name.focus();
}

async function saveDepartment(ev) {
  ev.preventDefault();
  const f = ev.target;
  const v = f.elements;
  const id = v.id.value.trim();
  if (!id) return showErrors(f, { data: { detail: [{ field: "id", message: t("id") + " ?" }] } });
  const body = {
    name: v.name.value,
    level: v.level.value,
    parent_id: v.parent_id.value || null,
    area: v.area.value.trim() || null,
    // Empty: the gateway's default for the unit (ptz.unit_priority, ptz.level_priority).
    ptz_priority: v.ptz_priority.value.trim() === "" ? null : Number(v.ptz_priority.value),
    reason: v.reason.value,
  };
  const res = await call(`/api/admin/departments/${enc(id)}`, "PUT", body);
  if (!res.ok) return showErrors(f, res);
  markOwnChange(res.data.revision);
  f.reset();
  flash(t("saved", res.data.revision));
  await state.reload();
}

function deleteDepartment(d) {
  previewThen(
    null,
    { op: "delete_department", department_id: d.id },
    () => call(`/api/admin/departments/${enc(d.id)}`, "DELETE"),
    "confirm_delete",
  );
}

// -- users and memberships -----------------------------------------------------------------------
/** A role within a department: the usual ones translated (member, lead), others as the policy names them. */
function memberRole(role) {
  const key = `mrole_${role}`;
  const text = t(key);
  return text === key ? role : text;
}

let selectedUser = null;

export function renderUsers() {
  fillTable(
    $("user-table"),
    [
      ["id", (u) => String(u.id)],
      ["username", (u) => u.username],
      ["display_name", (u) => u.display_name || ""],
      ["role", (u) => t("role_" + u.role)],
      ["active", (u) => (u.active ? "✓" : t("inactive"))],
      ["departments", (u) => u.memberships.map((m) => `${deptName(m.department_id)} (${memberRole(m.role)})`).join(", ")],
      [
        "actions",
        (u) => el("button", { type: "button", class: "small", onclick: () => showUser(u.id) }, t(state.can.edit ? "edit" : "detail")),
      ],
    ],
    state.users,
    (u) => ({ dataset: { user: String(u.id) }, class: u.id === selectedUser ? "selected" : null }),
  );
  if (selectedUser != null) showUser(selectedUser);
  const sel = $("explain-user-form").elements.user_id;
  const keep = sel.value;
  sel.replaceChildren(...state.users.map((u) => el("option", { value: u.id }, `${u.username} (${t("role_" + u.role)})`)));
  if (keep) sel.value = keep;
}

function showUser(id) {
  const u = state.users.find((x) => x.id === id);
  if (!u) {
    selectedUser = null;
    $("user-detail").hidden = true;
    return;
  }
  selectedUser = id;
  $("user-detail").hidden = false;
  $("user-detail").dataset.user = String(id);
  $("user-detail-title").textContent = t("user_detail", u.username);
  $("membership-list").replaceChildren(
    ...u.memberships.map((m) =>
      el(
        "li",
        { dataset: { dept: m.department_id } },
        `${deptName(m.department_id)} (${m.department_id}) · ${memberRole(m.role)} `,
        editButton("remove_membership", () => removeMembership(u, m.department_id), { class: "small danger" }),
      ),
    ),
  );
  const patch = $("user-patch-form"); // absent for read-only roles
  // Filled when another user is picked, not on every refresh: an edit in progress stays.
  if (patch && patch.dataset.user !== String(id)) {
    patch.dataset.user = String(id);
    const p = patch.elements;
    p.display_name.value = u.display_name || "";
    p.role.value = u.role;
    p.active.checked = u.active;
    p.password.value = "";
  }
  for (const row of $("user-table").querySelectorAll("tr[data-user]")) {
    row.classList.toggle("selected", row.dataset.user === String(id));
  }
}

async function createUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  const v = f.elements;
  const body = {
    username: v.username.value,
    password: v.password.value,
    role: v.role.value,
    display_name: v.display_name.value,
    reason: v.reason.value,
  };
  const res = await call("/api/admin/users", "POST", body);
  if (!res.ok) return showErrors(f, res);
  markOwnChange();
  f.reset();
  flash(`${t("done")}: ${res.data.username}`);
  selectedUser = res.data.id;
  await state.reload();
}

async function patchUser(ev) {
  ev.preventDefault();
  const f = ev.target;
  const u = state.users.find((x) => x.id === selectedUser);
  if (!u) return;
  const v = f.elements;
  const body = { reason: v.reason.value };
  if (v.display_name.value !== (u.display_name || "")) body.display_name = v.display_name.value;
  if (v.role.value !== u.role) body.role = v.role.value;
  if (v.active.checked !== u.active) body.active = v.active.checked;
  if (v.password.value) body.password = v.password.value;
  const save = () => call(`/api/admin/users/${u.id}`, "PATCH", body);
  if ("role" in body || "active" in body) {
    // A new system role or a deactivation changes what the user sees: preview it first.
    const proposal = { op: "patch_user", user_id: u.id, system_role: body.role ?? null, active: body.active ?? null };
    await previewThen(f, proposal, async () => {
      const res = await save();
      if (res.ok) markOwnChange();
      return res;
    });
    return;
  }
  const res = await save();
  if (!res.ok) return showErrors(f, res);
  markOwnChange();
  v.password.value = "";
  v.reason.value = "";
  clearErrors(f);
  flash(t("done"));
  await state.reload();
}

async function addMembership(ev) {
  ev.preventDefault();
  const f = ev.target;
  const v = f.elements;
  const uid = selectedUser;
  const dept = v.department_id.value;
  const body = { role: v.role.value, reason: v.reason.value };
  await previewThen(f, { op: "set_membership", user_id: uid, department_id: dept, role: body.role }, () =>
    call(`/api/admin/users/${uid}/memberships/${enc(dept)}`, "PUT", body),
  );
}

function removeMembership(u, dept) {
  previewThen(
    null,
    { op: "remove_membership", user_id: u.id, department_id: dept },
    () => call(`/api/admin/users/${u.id}/memberships/${enc(dept)}`, "DELETE"),
    "confirm_delete",
  );
}

// -- camera groups -------------------------------------------------------------------------------
export function renderGroups() {
  fillTable(
    $("group-table"),
    [
      ["id", (g) => g.id],
      ["name", (g) => g.name],
      ["type", (g) => (g.dynamic ? t("group_dynamic") : t("group_static"))],
      ["filter", (g) => (g.dynamic ? Object.entries(g.filter).map(([k, v]) => `${t("f_" + k)}=${v.join("|")}`).join("; ") : "")],
      ["size", (g) => String(g.cameras)],
      [
        "actions",
        (g) => [
          el("button", { type: "button", class: "small", onclick: () => showMembers(g) }, t("show_members")),
          editButton("edit", () => editGroup(g)),
          editButton("delete", () => deleteGroup(g), { class: "small danger" }),
        ],
      ],
    ],
    state.groups,
    (g) => ({ dataset: { group: g.id } }),
  );
}

async function showMembers(g) {
  const res = await call(`/api/admin/groups/${enc(g.id)}/cameras`);
  const pre = $("group-members");
  pre.hidden = false;
  pre.textContent = res.ok ? `${g.name} (${res.data.length}): ${res.data.join(", ")}` : t("error");
  return res;
}

async function editGroup(g) {
  const f = $("group-form");
  clearErrors(f);
  f.elements.id.value = g.id;
  f.elements.id.readOnly = true;
  f.elements.name.value = g.name;
  f.elements.type.value = g.dynamic ? "dynamic" : "static";
  groupKind();
  for (const k of FILTER_KEYS) f.elements["f_" + k].value = ((g.filter || {})[k] || []).join(", ");
  f.elements.cameras.value = "";
  if (!g.dynamic) {
    const res = await call(`/api/admin/groups/${enc(g.id)}/cameras`);
    if (res.ok) f.elements.cameras.value = res.data.join(", ");
  }
  f.querySelector("h2").textContent = `${t("edit")} ${g.id}`;
}

function groupKind() {
  const f = $("group-form");
  const kind = f.elements.type.value;
  for (const label of f.querySelectorAll("[data-group-kind]")) label.hidden = label.dataset.groupKind !== kind;
}

async function saveGroup(ev) {
  ev.preventDefault();
  const f = ev.target;
  const v = f.elements;
  const id = v.id.value.trim();
  const group = { name: v.name.value, reason: v.reason.value };
  if (v.type.value === "static") group.cameras = list(v.cameras.value);
  else {
    group.filter = {};
    for (const k of FILTER_KEYS) {
      const vals = list(v["f_" + k].value);
      if (vals.length) group.filter[k] = vals;
    }
  }
  const { reason, ...proposed } = group;
  await previewThen(f, { op: "put_group", group_id: id, group: proposed }, () =>
    call(`/api/admin/groups/${enc(id)}`, "PUT", { ...proposed, reason }),
  );
}

function deleteGroup(g) {
  previewThen(
    null,
    { op: "delete_group", group_id: g.id },
    () => call(`/api/admin/groups/${enc(g.id)}`, "DELETE"),
    "confirm_delete",
  );
}

// -- rules ---------------------------------------------------------------------------------------
export function renderRules() {
  const fs = $("rule-filter-subject").value.trim();
  const ft = $("rule-filter-target").value.trim();
  const rows = state.rules.filter((r) => (!fs || r.subject.includes(fs)) && (!ft || r.target.includes(ft)));
  fillTable(
    $("rule-table"),
    [
      ["id", (r) => String(r.id)],
      ["effect", (r) => el("span", { class: `effect-${r.effect}` }, t(r.effect))],
      ["subject", (r) => named(r.subject)],
      ["target", (r) => named(r.target)],
      ["action", (r) => t("act_" + r.action)],
      ["window", (r) => (r.not_before || r.not_after ? `${when(r.not_before)} – ${when(r.not_after)}` : "")],
      ["tag", (r) => r.tag || ""],
      [
        state.can.edit ? "actions" : "",
        (r) => [
          // Tagged rules belong to an incident or to the location rule: they are ended, not rewritten.
          r.tag ? "" : editButton("edit", () => editRule(r)),
          editButton("delete", () => deleteRule(r), { class: "small danger" }),
        ],
      ],
    ],
    rows,
    (r) => ({ dataset: { rule: String(r.id) } }),
  );
  $("subject-options").replaceChildren(
    el("option", { value: "*" }),
    ...state.departments.map((d) => el("option", { value: `dept:${d.id}` }, d.name)),
    ...["operator", "security_admin", "auditor", "member", "lead"].map((r) => el("option", { value: `role:${r}` })),
  );
  $("target-options").replaceChildren(
    ...state.groups.map((g) => el("option", { value: `group:${g.id}` }, g.name)),
    ...(state.attributes.cameras || []).map(([id, name]) => el("option", { value: `cam:${id}` }, name)),
  );
}

// -- pickers: choose from what the inventory and the policy have instead of typing ids ----------
/** Fill the pickers' lists (sub-districts, stations, tags, departments by name, cameras by name). */
export function renderPickers() {
  const a = state.attributes;
  const opts = (values) => values.map(([value, label]) => el("option", { value }, label));
  $("area-options").replaceChildren(...opts((a.areas || []).map((v) => [v, v])));
  $("station-options").replaceChildren(...opts((a.stations || []).map((s) => [s.value, `${s.value} · ${s.area}`])));
  $("tag-options").replaceChildren(...opts((a.tags || []).map((v) => [v, v])));
  $("dept-options").replaceChildren(...opts(state.departments.map((d) => [d.id, d.name])));
  $("camera-options").replaceChildren(...opts((a.cameras || []).map(([id, name]) => [id, name])));
}

/** A picker adds what was chosen to its field's comma list (once) and empties itself. */
export function wirePickers(root = document) {
  for (const p of root.querySelectorAll("input.picker[data-into]")) {
    p.addEventListener("change", () => {
      const value = p.value.trim();
      if (!value) return;
      const field = p.form.elements[p.dataset.into];
      const have = list(field.value);
      if (!have.includes(value)) field.value = [...have, value].join(", ");
      p.value = "";
      field.dispatchEvent(new Event("input", { bubbles: true }));
    });
  }
}

// "dept:city" with the department's name beside it, "group:x" with the group's.
function named(ref) {
  const [kind, id] = ref.split(/:(.*)/s);
  const name =
    kind === "dept" ? state.departments.find((d) => d.id === id)?.name : kind === "group" ? state.groups.find((g) => g.id === id)?.name : null;
  return name ? [ref, el("span", { class: "dim" }, ` ${name}`)] : ref;
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString(document.documentElement.lang) : "…";
}

function editRule(r) {
  const f = $("rule-form");
  clearErrors(f);
  const v = f.elements;
  v.rule_id.value = String(r.id);
  v.subject.value = r.subject;
  v.target.value = r.target;
  v.action.value = r.action;
  v.effect.value = r.effect;
  v.not_before.value = localFromIso(r.not_before);
  v.not_after.value = localFromIso(r.not_after);
  $("rule-form-title").textContent = t("edit_rule", r.id);
  v.subject.focus();
}

async function saveRule(ev) {
  ev.preventDefault();
  const f = ev.target;
  const v = f.elements;
  const rule = {
    subject: v.subject.value.trim(),
    target: v.target.value.trim(),
    action: v.action.value,
    effect: v.effect.value,
    not_before: isoFromLocal(v.not_before.value),
    not_after: isoFromLocal(v.not_after.value),
  };
  const id = v.rule_id.value;
  const reason = v.reason.value;
  const proposal = id ? { op: "replace_rule", rule_id: Number(id), rule } : { op: "add_rule", rule };
  await previewThen(f, proposal, () =>
    id ? call(`/api/admin/rules/${id}`, "PUT", { ...rule, reason }) : call("/api/admin/rules", "POST", { ...rule, reason }),
  );
}

function deleteRule(r) {
  previewThen(null, { op: "remove_rule", rule_id: r.id }, () => call(`/api/admin/rules/${r.id}`, "DELETE"), "confirm_delete");
}

// -- alarm routing -------------------------------------------------------------------------------
export async function loadRoutes() {
  if (!state.can.edit) return;
  const res = await call("/api/admin/alarm-routes");
  if (!res.ok) return;
  fillTable(
    $("route-table"),
    [
      ["id", (r) => (r.id == null ? "" : String(r.id))],
      ["source", (r) => (r.source === "settings" ? t("from_settings") : t("from_api"))],
      ["area", (r) => r.area],
      ["route_type", (r) => r.type],
      ["departments", (r) => r.departments.map(deptName).join(", ")],
      ["hours", (r) => r.hours || "00:00-24:00"],
      [
        "actions",
        (r) => (r.id == null ? "" : editButton("delete", () => deleteRoute(r), { class: "small danger" })),
      ],
    ],
    res.data,
    (r) => ({ dataset: { route: String(r.id ?? "settings") } }),
  );
}

async function saveRoute(ev) {
  ev.preventDefault();
  const f = ev.target;
  const v = f.elements;
  const body = { area: v.area.value.trim(), type: v.type.value.trim(), departments: list(v.departments.value), hours: v.hours.value.trim() };
  const res = await call("/api/admin/alarm-routes", "POST", body);
  if (!res.ok) return showErrors(f, res);
  f.reset();
  flash(t("done"));
  await loadRoutes();
}

async function deleteRoute(r) {
  const res = await call(`/api/admin/alarm-routes/${r.id}`, "DELETE");
  flash(res.ok ? t("done") : t("error"), !res.ok);
  await loadRoutes();
}

/** Wire the forms (once). */
export function initPolicy() {
  $("dept-form").addEventListener("submit", saveDepartment);
  $("dept-form").addEventListener("reset", (ev) => resetForm(ev.target, "new"));
  $("user-form").addEventListener("submit", createUser);
  $("user-form").addEventListener("reset", (ev) => clearErrors(ev.target));
  $("user-patch-form").addEventListener("submit", patchUser);
  $("user-patch-form").addEventListener("reset", (ev) => {
    clearErrors(ev.target);
    delete ev.target.dataset.user; // refilled from the saved user on the next refresh
  });
  $("membership-form").addEventListener("submit", addMembership);
  $("group-form").addEventListener("submit", saveGroup);
  $("group-form").addEventListener("reset", (ev) => {
    resetForm(ev.target, "new");
    setTimeout(groupKind);
  });
  $("group-form").elements.type.addEventListener("change", groupKind);
  $("rule-form").addEventListener("submit", saveRule);
  $("rule-form").addEventListener("reset", (ev) => {
    clearErrors(ev.target);
    ev.target.elements.rule_id.value = "";
    $("rule-form-title").textContent = t("new_rule");
  });
  for (const id of ["rule-filter-subject", "rule-filter-target"]) $(id).addEventListener("input", renderRules);
  $("route-form").addEventListener("submit", saveRoute);
  $("route-form").addEventListener("reset", (ev) => clearErrors(ev.target));
}

function resetForm(f, titleKey) {
  clearErrors(f);
  if (f.elements.id) f.elements.id.readOnly = false;
  const h = f.querySelector("h2");
  if (h) h.textContent = t(titleKey);
}
