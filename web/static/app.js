// The operator console: login, the cameras you may view, live tiles over WebRTC (WHEP), the map,
// the alarm panel and the dashboard.
import { AlarmPanel } from "./alarms.js";
import { api, setUnauthorizedHandler } from "./api.js";
import { CameraList } from "./camlist.js";
import { CaseForm, mayOpenCases } from "./caseform.js";
import { Dashboard } from "./dashboard.js";
import { applyTexts, has, t, toggleLang } from "./i18n.js";
import { Login } from "./login.js";
import { MapView } from "./map.js";
import { LAYOUTS, TileGrid } from "./tiles.js";
import { VehiclePanel } from "./vehiclepanel.js";

const $ = (id) => document.getElementById(id);
const FILTERS = {
  "f-text": "text", "f-area": "area", "f-station": "station", "f-kind": "kind", "f-status": "status", "f-dept": "department",
};
const state = { me: null, config: { ice_servers: [] }, events: null, visible: null, view: "wall" };
const VIEWS = { wall: "grid", map: "map-view", dashboard: "dashboard" };

const grid = new TileGrid($("grid"), $("tile-template"), () => state.config);
const list = new CameraList($("camera-scroll"), $("camera-list"), {
  onOpen: (cam, t0) => grid.open(cam.id, cam.name, t0),
  deptName: (id) => deptName(id),
  onLoaded: () => showCount(),
});
const vehiclePanel = new VehiclePanel($("vehicle-panel"), { onOpen: (ids, names) => openCameras(ids, names) });
const mapView = new MapView($("map"), $("map-note"), {
  config: () => state.config,
  onOpen: (ids, names) => openCameras(ids, names),
  panel: vehiclePanel,
});
const panel = new AlarmPanel($("incident-list"), $("inc-filter"), $("inc-mute"), {
  config: () => state.config,
  onOpen: (ids) => openCameras(ids),
  // The incident's recordings in its cameras' tiles, from a few seconds before the alarm (the pre-roll).
  onPlayback: async (inc) => {
    await openCameras(inc.cameras, [], inc.id);
    const at = Date.parse(inc.created_at) - 5000;
    for (const id of inc.cameras.slice(0, 16)) {
      const tile = grid.tiles.get(id);
      if (tile && !tile.timeline.open) tile.togglePlayback({ incident: inc.id, at });
    }
  },
  onChange: (incidents) => {
    $("alarm-count").textContent = String(panel.openCount);
    $("alarm-count").classList.toggle("hot", incidents.some((i) => i.overdue || i.state === "new"));
    mapView.showIncidents(incidents);
  },
});
const dashboard = new Dashboard($("dashboard"), { config: () => state.config });
// Call-takers enter cases beside the alarm panel; the new case shows there as the events tell.
const caseForm = new CaseForm($("case-new"), $("case-form-box"), {
  config: () => state.config,
  onCreated: () => {
    panel.changed();
    dashboard.changed();
  },
});
const login = new Login({ t, enter, hide: ["views", "alarm-toggle", "admin-link"] });

async function boot() {
  applyTexts();
  $("lang").addEventListener("click", () => {
    toggleLang();
    list.relabel();
    grid.relabel();
    panel.relabel();
    dashboard.relabel();
    caseForm.relabel();
    mapView.relabel();
    showCount();
  });
  for (const b of $("views").querySelectorAll("button[data-view]")) {
    b.addEventListener("click", () => setView(b.dataset.view));
  }
  $("alarm-toggle").addEventListener("click", () => {
    const shown = $("alarm-panel").hidden;
    $("alarm-panel").hidden = !shown;
    $("alarm-toggle").setAttribute("aria-pressed", String(shown));
    if (state.view === "map" && mapView.map) mapView.map.invalidateSize();
  });
  $("alarm-banner").addEventListener("click", () => {
    // Seen: the banner gives way to the incident in the panel.
    const id = $("alarm-banner").dataset.incident;
    $("alarm-banner").hidden = true;
    $("alarm-panel").hidden = false;
    $("alarm-toggle").setAttribute("aria-pressed", "true");
    if (id && panel.selected !== id) panel.select(id);
  });
  $("logout").addEventListener("click", onLogout);
  $("layout").addEventListener("change", () => grid.setLayout(Number($("layout").value)));
  $("f-text").addEventListener("input", debounce(reloadList, 250));
  for (const id of ["f-area", "f-station", "f-kind", "f-status", "f-dept"]) $(id).addEventListener("change", reloadList);
  window.addEventListener("hashchange", openFromHash);
  window.addEventListener("pagehide", () => grid.abandon());
  setUnauthorizedHandler(() => {
    if (state.me) leave(t("session_expired"));
  });
  await login.resume();
}

async function onLogout() {
  await leave("");
  await login.logout();
}

// Back to the login form: every tile closed (its session ended), nothing of the last user kept.
async function leave(message) {
  state.me = null;
  if (state.events) state.events.close();
  state.events = null;
  await grid.closeAll();
  list.stop();
  panel.stop();
  mapView.reset();
  dashboard.reset();
  caseForm.enable(false);
  setView("wall");
  $("alarm-banner").hidden = true;
  login.show(message);
}

/** A department's name (the console never shows a unit's id where its name is known). */
function deptName(id) {
  const d = (state.config.departments || []).find((x) => x.id === id);
  return d ? d.name : id;
}

async function enter(me) {
  state.me = me;
  $("console").hidden = false;
  $("views").hidden = false;
  $("alarm-toggle").hidden = false;
  $("admin-link").hidden = !["admin", "security_admin", "auditor"].includes(me.role);
  const [config, facets] = await Promise.all([api("/api/config"), api("/api/console/facets")]);
  if (config.ok) state.config = await config.json();
  const units = me.departments.map(deptName);
  login.signedIn(`${me.username}${units.length ? " · " + units.join("、") : ""}`);
  if (facets.ok) fillFacets(await facets.json());
  caseForm.enable(mayOpenCases(me, state.config));
  await reloadList();
  openFromHash();
  startEvents();
  await panel.start();
}

/** Show the wall, the map or the dashboard (the camera list and the alarm panel stay). */
function setView(view) {
  state.view = view;
  for (const [name, id] of Object.entries(VIEWS)) $(id).hidden = name !== view;
  for (const b of $("views").querySelectorAll("button[data-view]")) b.setAttribute("aria-pressed", String(b.dataset.view === view));
  $("layout").closest("label").hidden = view !== "wall";
  if (view === "map") mapView.show();
  else mapView.hide();
  if (view === "dashboard") dashboard.show();
  else dashboard.hide();
}

/** Open cameras on the wall (from the map, an incident): a layout big enough, the wall in view. */
async function openCameras(ids, names = [], incidentId = null) {
  if (state.view !== "wall") setView("wall");
  const todo = ids.filter((id) => !grid.tiles.has(id)).slice(0, 16);
  const needed = grid.tiles.size + todo.length;
  const layout = LAYOUTS.find((n) => n >= needed) || 16;
  if (grid.layout < layout) {
    $("layout").value = String(layout);
    await grid.setLayout(layout);
  }
  const opening = ids.slice(0, 16).map((id, i) => grid.open(id, names[i] || nameOf(id)));
  // An incident's cameras take the first places of the wall, marked, ahead of what was open.
  if (incidentId) grid.toFront(ids.slice(0, 16), incidentId);
  await Promise.all(opening);
}

// The filter menus list only values the user's own cameras have (with counts).
function fillFacets(f) {
  state.visible = f.total;
  for (const [id, values] of [["f-area", f.areas], ["f-station", f.stations || []], ["f-dept", f.departments]]) {
    const sel = $(id);
    const keep = sel.value;
    while (sel.options.length > 1) sel.remove(1);
    for (const v of values) sel.add(new Option(`${v.name || v.value} (${v.count})`, v.value));
    sel.value = keep;
  }
}

function filterParams() {
  const q = new URLSearchParams();
  for (const [id, key] of Object.entries(FILTERS)) {
    const v = $(id).value.trim();
    if (v) q.set(key, v);
  }
  return q;
}

async function reloadList() {
  if (!state.me) return;
  await list.reload(filterParams());
}

function showCount() {
  const n = list.total ?? 0;
  const filtered = [...filterParams().keys()].length > 0;
  $("count").textContent = filtered && state.visible != null ? t("count_filtered", n, state.visible) : t("count", n);
}

// Alarms open their cameras by themselves: the server sends only what this user may view.
function startEvents() {
  if (state.events) state.events.close();
  const es = new EventSource("/api/events");
  state.events = es;
  es.addEventListener("incident.opened", (ev) => {
    const inc = JSON.parse(ev.data);
    panel.alarm(inc.incident_id);
    dashboard.changed();
    onIncident(inc, true);
  });
  // A case dispatched (or escalated) to this user's unit: announced and its cameras opened, as for
  // the units on duty when an alarm opens (the dispatch granted them).
  es.addEventListener("incident.dispatched", (ev) => {
    const inc = JSON.parse(ev.data);
    panel.alarm(inc.incident_id);
    dashboard.changed();
    onIncident(inc, true);
  });
  // A security admin changed the policy: what this user may see may have changed, without a reload.
  es.addEventListener("policy.changed", refreshSoon);
  es.addEventListener("incident.cameras", (ev) => {
    const d = JSON.parse(ev.data);
    panel.changed();
    onIncident({ ...d, cameras: d.cameras || d.added }, false);
  });
  for (const type of ["incident.updated", "incident.overdue"]) {
    es.addEventListener(type, () => {
      panel.changed();
      dashboard.changed();
    });
  }
  // The buffer no longer reaches back to what we last saw: reload what the events would have told.
  es.addEventListener("reset", () => panel.changed());
  // The gateway ended the stream: the login ended (logout elsewhere, revoked) or we fell behind.
  // Ask once: a 401 takes the console back to the login form at once; otherwise reconnect.
  es.addEventListener("end", async () => {
    es.close();
    if (state.events !== es) return;
    state.events = null;
    const r = await api("/api/auth/me");
    if (r.ok && state.me) startEvents();
  });
}

const refreshSoon = debounce(refreshVisible, 300); // a burst of changes reloads once

async function refreshVisible() {
  if (!state.me) return;
  const facets = await api("/api/console/facets");
  if (facets.ok) fillFacets(await facets.json());
  const top = $("camera-scroll").scrollTop; // an operator deep in a long list stays where they were
  await reloadList();
  $("camera-scroll").scrollTop = top;
}

async function onIncident(inc, isNew) {
  const banner = $("alarm-banner");
  if (isNew) {
    banner.hidden = false;
    banner.dataset.incident = inc.incident_id;
    const type = inc.type && has(`type_${inc.type}`) ? t(`type_${inc.type}`) : inc.type || "";
    banner.textContent = [`${t("alarm")} ${inc.incident_id}`, type, inc.area, inc.vehicle_id, inc.text].filter(Boolean).join(" · ");
  }
  // The incident's cameras open on the wall by themselves: the operator needs no click.
  const cams = inc.cameras || [];
  if (cams.length) await openCameras(cams, [], inc.incident_id);
}

function nameOf(id) {
  const cam = list.find(id);
  return cam ? cam.name : id;
}

// A link (or another system) opens cameras: #camera=<id>[,<id>...]. A camera the user may not
// view opens a tile that says so: the refusal comes from the same check as every other view.
function openFromHash() {
  const m = location.hash.match(/camera=([^&]+)/);
  if (!m || !state.me) return;
  history.replaceState(null, "", location.pathname + location.search);
  for (const id of m[1].split(",").map(decodeURIComponent).filter(Boolean).slice(0, 16)) grid.open(id, nameOf(id));
}

function debounce(fn, ms) {
  let h;
  return (...a) => {
    clearTimeout(h);
    h = setTimeout(() => fn(...a), ms);
  };
}

boot();
