// The operator console: login, the cameras you may view, live tiles over WebRTC (WHEP).
import { applyTexts, t, toggleLang } from "./i18n.js";
import { WhepError, WhepPlayer, csrfToken } from "./whep.js";

const $ = (id) => document.getElementById(id);
const state = { me: null, config: { ice_servers: [] }, tiles: new Map(), cameras: [] };

async function api(path, opts = {}) {
  const headers = { ...(opts.headers || {}) };
  if (opts.method && opts.method !== "GET") headers["X-CSRF-Token"] = csrfToken();
  const r = await fetch(path, { credentials: "same-origin", ...opts, headers });
  return r;
}

async function boot() {
  applyTexts();
  $("lang").addEventListener("click", () => {
    toggleLang();
    renderList();
    for (const tile of state.tiles.values()) tile.relabel();
  });
  $("login-form").addEventListener("submit", onLogin);
  $("logout").addEventListener("click", onLogout);
  $("layout").addEventListener("change", () => ($("grid").dataset.layout = $("layout").value));
  for (const id of ["f-text", "f-area", "f-kind"]) $(id).addEventListener("input", debounce(loadCameras, 200));
  window.addEventListener("hashchange", openFromHash);
  const r = await api("/api/auth/me");
  if (r.ok) await enter(await r.json());
  else showLogin();
}

function showLogin() {
  $("login-view").hidden = false;
  $("console").hidden = true;
  $("logout").hidden = true;
  $("who").textContent = "";
}

async function onLogin(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const r = await api("/api/auth/login", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ username: $("username").value, password: $("password").value }),
  });
  if (!r.ok) {
    $("login-error").textContent = r.status === 429 ? t("throttled") : t("bad_login");
    return;
  }
  const me = await api("/api/auth/me");
  await enter(await me.json());
}

async function onLogout() {
  if (state.events) state.events.close();
  state.events = null;
  for (const tile of [...state.tiles.values()]) await tile.close();
  await api("/api/auth/logout", { method: "POST" });
  showLogin();
}

async function enter(me) {
  state.me = me;
  $("login-view").hidden = true;
  $("console").hidden = false;
  $("logout").hidden = false;
  $("who").textContent = `${me.username}${me.departments.length ? " · " + me.departments.join(", ") : ""}`;
  const c = await api("/api/config");
  if (c.ok) state.config = await c.json();
  await loadCameras();
  openFromHash();
  startEvents();
}

// Alarms open their cameras by themselves: the server sends only what this user may view.
function startEvents() {
  if (state.events) state.events.close();
  const es = new EventSource("/api/events");
  state.events = es;
  es.addEventListener("incident.opened", (ev) => onIncident(JSON.parse(ev.data), true));
  es.addEventListener("incident.cameras", (ev) => {
    const d = JSON.parse(ev.data);
    onIncident({ ...d, cameras: d.cameras || d.added }, false);
  });
}

async function onIncident(inc, isNew) {
  const banner = $("alarm-banner");
  if (isNew) {
    banner.hidden = false;
    banner.dataset.incident = inc.incident_id;
    banner.textContent = `${t("alarm")} ${inc.incident_id} · ${inc.type || ""} ${inc.vehicle_id || ""} ${inc.text || ""}`;
  }
  const cams = inc.cameras || [];
  const needed = state.tiles.size + cams.length;
  const layout = [1, 4, 9, 16].find((n) => n >= needed) || 16;
  if (Number($("layout").value) < layout) {
    $("layout").value = String(layout);
    $("grid").dataset.layout = String(layout);
  }
  for (const cam of cams) await openTile(cam, cam);
}

async function loadCameras() {
  const q = new URLSearchParams({ limit: "1000" });
  if ($("f-text").value) q.set("text", $("f-text").value);
  if ($("f-area").value) q.set("area", $("f-area").value);
  if ($("f-kind").value) q.set("kind", $("f-kind").value);
  const r = await api(`/api/cameras?${q}`);
  if (r.status === 401) return showLogin();
  const body = await r.json();
  state.cameras = body.items;
  state.total = body.total;
  const areas = new Set([...$("f-area").options].map((o) => o.value));
  for (const cam of body.items) {
    if (cam.area && !areas.has(cam.area)) {
      areas.add(cam.area);
      $("f-area").add(new Option(cam.area, cam.area));
    }
  }
  renderList();
}

function renderList() {
  $("count").textContent = t("count", state.total ?? 0);
  const ul = $("camera-list");
  ul.replaceChildren();
  for (const cam of state.cameras) {
    const li = document.createElement("li");
    li.className = "cam";
    li.dataset.camera = cam.id;
    const name = document.createElement("span");
    name.className = "cam-name";
    name.textContent = cam.name;
    const meta = document.createElement("span");
    meta.className = "cam-meta";
    meta.textContent = [cam.area, t(`kind_${cam.kind}`)].filter(Boolean).join(" · ");
    const badge = document.createElement("span");
    const st = cam.stream ? cam.stream.state : "idle";
    badge.className = `badge ${st}`;
    badge.textContent = t(`status_${st}`) || st;
    const thumb = document.createElement("img");
    thumb.className = "thumb";
    thumb.alt = "";
    thumb.dataset.src = `/api/cameras/${encodeURIComponent(cam.id)}/snapshot.jpg?width=160`;
    li.append(thumb, name, badge, meta);
    li.addEventListener("click", () => openTile(cam.id, cam.name));
    ul.append(li);
    thumbs.observe(thumb);
  }
}

// Thumbnails load only when on screen, refresh while on screen, and tell the server what is
// being watched so its refresher keeps those fresh first.
const onScreen = new Set();
const thumbs = new IntersectionObserver((entries) => {
  for (const e of entries) {
    const img = e.target;
    const id = img.parentElement && img.parentElement.dataset.camera;
    if (e.isIntersecting) {
      onScreen.add(img);
      if (!img.src) img.src = img.dataset.src;
      if (id) postInterest([id]);
    } else {
      onScreen.delete(img);
    }
  }
});
setInterval(() => {
  const ids = [];
  for (const img of onScreen) {
    if (!img.isConnected) {
      onScreen.delete(img);
      continue;
    }
    img.src = `${img.dataset.src}&t=${Date.now() >> 14}`;
    ids.push(img.parentElement.dataset.camera);
  }
  if (ids.length) postInterest(ids);
}, 15000);

let pendingInterest = new Set();
let interestTimer = null;
function postInterest(ids) {
  for (const id of ids) pendingInterest.add(id);
  if (interestTimer) return;
  interestTimer = setTimeout(async () => {
    const body = JSON.stringify({ camera_ids: [...pendingInterest].slice(0, 2000) });
    pendingInterest = new Set();
    interestTimer = null;
    await api("/api/snapshots/interest", { method: "POST", headers: { "Content-Type": "application/json" }, body });
  }, 300);
}

function openFromHash() {
  const m = location.hash.match(/camera=([^&]+)/);
  if (m) openTile(decodeURIComponent(m[1]), decodeURIComponent(m[1]));
}

class Tile {
  constructor(cameraId, name) {
    this.cameraId = cameraId;
    this.name = name;
    this.el = $("tile-template").content.firstElementChild.cloneNode(true);
    this.el.dataset.camera = cameraId;
    this.video = this.el.querySelector("video");
    this.msg = this.el.querySelector(".tile-msg");
    this.el.querySelector(".tile-title").textContent = name;
    this.el.querySelector(".tile-close").addEventListener("click", () => this.close());
    this.player = null;
    this.statusKey = "connecting";
    this.timer = null;
  }

  relabel() {
    if (this.statusKey) this.setStatus(this.statusKey, this.error);
  }

  setStatus(key, extra) {
    this.statusKey = key;
    this.error = extra;
    this.msg.textContent = t(key) + (extra ? ` (${extra})` : "");
    this.el.dataset.state = key;
  }

  async start() {
    this.setStatus("connecting");
    this.player = new WhepPlayer(this.cameraId, this.video, state.config.ice_servers || []);
    this.player.onended = () => this.onServerEnd();
    try {
      await this.player.start();
    } catch (e) {
      const key = e instanceof WhepError ? { 403: "denied", 415: "codec", 503: "unavailable" }[e.status] || "failed" : "failed";
      this.setStatus(key, e instanceof WhepError && key === "failed" ? e.message : undefined);
      this.player = null;
      return;
    }
    this.video.addEventListener("playing", () => this.setStatus("playing"), { once: true });
    this.timer = setInterval(() => this.updateInfo(), 1000);
  }

  async updateInfo() {
    const s = this.player && (await this.player.stats());
    if (!s) return;
    const kbps = this.lastBytes != null ? Math.round(((s.bytesReceived - this.lastBytes) * 8) / 1000) : 0;
    this.lastBytes = s.bytesReceived;
    const w = this.video.videoWidth;
    this.el.querySelector(".tile-info").textContent = `WebRTC ${w ? w + "p".replace("p", "×" + this.video.videoHeight) : ""} ${kbps} kbit/s`;
  }

  async onServerEnd() {
    clearInterval(this.timer);
    // Find out why: a camera we may no longer view means the permission was withdrawn.
    const r = await api(`/api/cameras/${encodeURIComponent(this.cameraId)}`);
    this.setStatus(r.status === 403 ? "revoked" : "ended");
    this.el.classList.add("ended");
    this.player = null;
  }

  async close() {
    clearInterval(this.timer);
    state.tiles.delete(this.cameraId);
    this.el.remove();
    if (this.player) await this.player.stop();
  }
}

async function openTile(cameraId, name) {
  if (state.tiles.has(cameraId)) return;
  const max = Number($("layout").value);
  if (state.tiles.size >= max) {
    const oldest = state.tiles.values().next().value;
    await oldest.close();
  }
  const tile = new Tile(cameraId, name);
  state.tiles.set(cameraId, tile);
  $("grid").append(tile.el);
  await tile.start();
}

function debounce(fn, ms) {
  let h;
  return (...a) => {
    clearTimeout(h);
    h = setTimeout(() => fn(...a), ms);
  };
}

boot();
