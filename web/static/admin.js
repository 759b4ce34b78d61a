// The security-admin console: who sees what (departments, users, groups, rules), alarm routing,
// explain views, policy history with rollback, and the audit log. The page shows only what the
// caller's role may do; the server enforces every call regardless.
import { api, setUnauthorizedHandler } from "./api.js";
import { applyTexts, t, toggleLang } from "./admin-i18n.js";
import { $, call, changedElsewhere, confirmPreview, flash, hidePreview, state } from "./admin-common.js";
import { Login } from "./login.js";

let events = null;
let refreshTimer = null;
const LEFT_MESSAGE = "liandong.admin.left"; // why the last login ended, shown after the page reloads
import {
  initPolicy,
  loadRoutes,
  renderDepartments,
  renderGroups,
  renderPickers,
  renderRules,
  renderUsers,
  wirePickers,
} from "./admin-policy.js";
import { initReview, loadAudit, loadHistory } from "./admin-review.js";

const login = new Login({ t, enter, hide: ["no-access", "read-only"] });

const CAN = {
  admin: { read: true, edit: true, audit: true },
  security_admin: { read: true, edit: true, audit: false },
  auditor: { read: true, edit: false, audit: true },
};

async function boot() {
  applyTexts();
  $("lang").addEventListener("click", () => {
    toggleLang();
    if (state.me) renderAll();
  });
  $("logout").addEventListener("click", onLogout);
  for (const b of $("tabs").querySelectorAll("button[data-tab]")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("preview-confirm").addEventListener("click", confirmPreview);
  wirePickers();
  $("preview-cancel").addEventListener("click", hidePreview);
  initPolicy();
  initReview();
  state.reload = reloadPolicy;
  setUnauthorizedHandler(() => {
    if (state.me) leave(t("session_expired"));
  });
  const left = sessionStorage.getItem(LEFT_MESSAGE) || "";
  sessionStorage.removeItem(LEFT_MESSAGE);
  await login.resume(left);
}

async function onLogout() {
  if (events) events.close();
  await login.logout();
  leave("");
}

// Back to the login form on a fresh page: nothing of the last user (their lists, the forms their
// role removed) is kept for the next one.
function leave(message) {
  state.me = null;
  if (events) events.close();
  events = null;
  sessionStorage.setItem(LEFT_MESSAGE, message);
  location.replace(location.pathname);
}

async function enter(me) {
  state.me = me;
  state.can = CAN[me.role] || { read: false, edit: false, audit: false };
  login.signedIn(`${me.username} · ${t("role_" + me.role)}`);
  document.body.dataset.role = me.role;
  if (!state.can.read) {
    $("no-access").hidden = false;
    $("console").hidden = true;
    return;
  }
  $("console").hidden = false;
  $("read-only").hidden = state.can.edit;
  // Only what the role may do exists on the page: editors' forms and buttons are removed for auditors.
  for (const e of document.querySelectorAll("[data-needs]")) {
    const need = e.dataset.needs;
    e.hidden = !state.can[need];
    if (!state.can[need] && e.tagName !== "BUTTON") e.remove();
  }
  await reloadPolicy();
  watchPolicy();
  const first = [...$("tabs").querySelectorAll("button[data-tab]")].find((b) => !b.hidden);
  showTab(location.hash.slice(1) || first.dataset.tab);
}

// Another admin (or the CLI, or an incident) changed the policy: refresh the lists, and say so.
function watchPolicy() {
  if (events) events.close();
  events = new EventSource("/api/events");
  // The server ends the stream when the login ends (logout elsewhere, revoked, deactivated).
  events.addEventListener("end", () => api("/api/auth/me")); // a 401 there returns to the login form
  let seen = [];
  events.addEventListener("policy.changed", (ev) => {
    seen.push(JSON.parse(ev.data).revision);
    clearTimeout(refreshTimer);
    // Decided a moment later: the event of this console's own save can arrive before its reply.
    refreshTimer = setTimeout(async () => {
      const say = seen.map(changedElsewhere).some(Boolean);
      seen = [];
      await reloadPolicy();
      if (say) flash(t("changed_elsewhere"));
    }, 400);
  });
}

function showTab(name) {
  const button = $("tabs").querySelector(`button[data-tab="${CSS.escape(name)}"]`);
  if (!button || button.hidden) return;
  for (const b of $("tabs").querySelectorAll("button[data-tab]")) b.classList.toggle("active", b === button);
  for (const p of document.querySelectorAll(".pane")) p.hidden = p.id !== `pane-${name}`;
  history.replaceState(null, "", `#${name}`);
  hidePreview();
  if (name === "history") loadHistory();
  if (name === "audit") loadAudit();
  if (name === "routes") loadRoutes();
}

/** Load the policy lists again (after every change) and redraw. */
async function reloadPolicy() {
  const [depts, users, groups, rules, newest, attributes] = await Promise.all([
    call("/api/admin/departments"),
    call("/api/admin/users"),
    call("/api/admin/groups"),
    call("/api/admin/rules"),
    call("/api/admin/revisions?limit=1"),
    call("/api/admin/camera-attributes"),
  ]);
  if (attributes.ok) state.attributes = attributes.data;
  if (newest.ok && newest.data.length) state.knownRevision = Math.max(state.knownRevision, newest.data[0].id);
  if (depts.ok) state.departments = depts.data;
  if (users.ok) state.users = users.data;
  if (groups.ok) state.groups = groups.data;
  if (rules.ok) state.rules = rules.data;
  renderAll();
  if (!$("pane-history").hidden) await loadHistory();
  if (!$("pane-routes").hidden) await loadRoutes();
}

function renderAll() {
  renderDepartments();
  renderUsers();
  renderGroups();
  renderRules();
  renderPickers();
  document.body.dataset.loaded = "1";
}

boot();
