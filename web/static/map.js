// The map: the district boundary, the fixed cameras the user may view, and buses and trucks at their
// live positions. Tiles only if a tile server is configured: a control room without internet still
// sees boundary, cameras and vehicles on a plain background.
import * as L from "/vendor/leaflet.mjs";
import { api } from "./api.js";
import { t } from "./i18n.js";

const SLICE_MS = 8; // longest stretch of marker updates between two frames
// Above this many vehicles markers jump instead of gliding: without a GPU, a thousand CSS transitions
// at once were the map's longest tasks (bench/console_speed.py).
const GLIDE_MAX = 300;
const STALE_S = 120; // a vehicle fix older than this is drawn faded (the tracker went quiet)
const CAMERA_COLOURS = { online: "#2fbf71", offline: "#e5484d", error: "#e5484d", unknown: "#8a96a3" };
const FALLBACK_CENTRE = [31.11, 121.38];
const TRACK_S = 1800; // the last half hour of an incident vehicle's route is drawn
const TRACK_EVERY_MS = 10_000;

export class MapView {
  /** `el` holds the map; `config()` gives the console config; `onOpen(ids, names)` opens cameras in tiles. */
  constructor(el, note, { config, onOpen, panel }) {
    this.el = el;
    this.panel = panel || null; // the vehicle panel (vehiclepanel.js) a marker click opens
    this.note = note;
    this.config = config;
    this.onOpen = onOpen;
    this.map = null;
    this.cameraLayer = null;
    this.boundary = null;
    this.vehicles = new Map(); // vehicle id -> {marker, data}
    this.incidents = new Map(); // incident id -> marker
    this.lastIncidents = null;
    this.timer = null;
    this.active = false;
    this.loaded = false;
    this.polling = false;
    el.liandongMap = this; // for tests: the same object the page uses, no global
  }

  /** The map became visible: build it on first use, then keep vehicles moving while it is shown. */
  async show() {
    this.active = true;
    if (!this.map) this.build();
    this.map.invalidateSize();
    if (!this.loaded) {
      this.loaded = true;
      await Promise.all([this.loadBoundary(), this.loadCameras()]);
    }
    await this.pollVehicles();
    this.startPolling();
  }

  hide() {
    this.active = false;
    clearInterval(this.timer);
    this.timer = null;
  }

  /** Logout: forget everything the last user could see. */
  reset() {
    this.hide();
    if (this.map) this.map.remove();
    this.map = null;
    this.layerControl = null;
    this.tracks = new Map();
    this.vehicles.clear();
    this.incidents.clear();
    this.lastIncidents = null;
    this.loaded = false;
    for (const key of ["boundary", "cameras", "vehicles"]) delete this.el.dataset[key];
  }

  build() {
    const cfg = this.config().map || {};
    this.map = L.map(this.el, {
      preferCanvas: true, // thousands of camera dots draw on one canvas
      zoomControl: true,
      attributionControl: Boolean(cfg.tile_url),
      maxZoom: cfg.max_zoom || 19,
      minZoom: 8,
      zoomSnap: 0.25, // the district fills the view instead of the nearest whole zoom level
      zoomDelta: 0.5,
    });
    this.map.setView(FALLBACK_CENTRE, 12);
    if (cfg.tile_url) {
      L.tileLayer(cfg.tile_url, { maxZoom: cfg.max_zoom || 19, attribution: cfg.attribution || "" }).addTo(this.map);
      this.el.classList.remove("no-tiles");
    } else {
      this.el.classList.add("no-tiles");
    }
    this.note.textContent = cfg.tile_url ? "" : t("map_no_tiles");
    this.cameraLayer = L.layerGroup().addTo(this.map);
    this.vehicleLayers = { bus: L.layerGroup().addTo(this.map), truck: L.layerGroup().addTo(this.map) };
    this.incidentLayer = L.layerGroup().addTo(this.map);
    this.trackLayer = L.layerGroup().addTo(this.incidentLayer);
    this.svg = L.svg(); // tracks as SVG paths (few), the thousands of dots stay on the canvas
    this.tracks = new Map(); // vehicle id -> {line, at}
    this.addLayerControl();
    if (this.lastIncidents) this.showIncidents(this.lastIncidents);
  }

  // What to show: fixed cameras, buses, trucks, incidents (an operator hides what is in the way).
  addLayerControl() {
    if (this.layerControl) this.layerControl.remove();
    this.layerControl = L.control
      .layers(
        null,
        {
          [t("layer_cameras")]: this.cameraLayer,
          [t("kind_bus")]: this.vehicleLayers.bus,
          [t("kind_truck")]: this.vehicleLayers.truck,
          [t("incidents")]: this.incidentLayer,
        },
        { collapsed: false, position: "topright" },
      )
      .addTo(this.map);
  }

  async loadBoundary() {
    const r = await api("/api/console/district");
    if (!r.ok || !this.map) return;
    const doc = await r.json();
    if (!doc.features || !doc.features.length) return;
    this.boundary = L.geoJSON(doc, {
      style: { color: "#3d8bfd", weight: 2, fill: true, fillOpacity: 0.04, dashArray: "6 4" },
      interactive: false,
    }).addTo(this.map);
    this.map.fitBounds(this.boundary.getBounds(), { padding: [16, 16] });
    this.el.dataset.boundary = "1";
  }

  async loadCameras() {
    const r = await api("/api/console/map/cameras");
    if (!r.ok || !this.map) return;
    const { cameras } = await r.json();
    this.cameraLayer.clearLayers();
    for (const [id, name, lat, lon, status, area] of cameras) {
      const m = L.circleMarker([lat, lon], {
        radius: 5,
        weight: 1,
        color: "#0b0e12",
        fillColor: CAMERA_COLOURS[status] || CAMERA_COLOURS.unknown,
        fillOpacity: 0.9,
      });
      m.cameraId = id;
      m.bindTooltip(`${name} · ${area || ""} · ${t(`status_${status}`)}`);
      m.on("click", () => this.onOpen([id], [name]));
      m.addTo(this.cameraLayer);
    }
    this.el.dataset.cameras = String(cameras.length);
    if (!this.boundary && cameras.length) {
      this.map.fitBounds(L.latLngBounds(cameras.map((c) => [c[2], c[3]])), { padding: [24, 24], maxZoom: 15 });
    }
  }

  startPolling() {
    clearInterval(this.timer);
    const every = ((this.config().map || {}).vehicle_refresh_s || 2) * 1000;
    this.timer = setInterval(() => {
      if (!document.hidden) this.pollVehicles();
    }, every);
  }

  // One request at a time: a slow gateway is not asked again before it answered.
  async pollVehicles() {
    if (this.polling || !this.active || !this.map) return;
    this.polling = true;
    try {
      const r = await api("/api/vehicles");
      if (r.ok && this.map) await this.showVehicles(await r.json());
      if (this.panel) await this.panel.refresh();
      if (this.map) await this.updateTracks();
    } finally {
      this.polling = false;
    }
  }

  // Every poll moves up to a thousand markers or more: the DOM work is cut into slices of a few
  // milliseconds, one per frame, so no task holds the page longer than a frame (measured: one pass
  // over 1,049 markers was a 150-1,000 ms task; bench/console_speed.py). A newer list, or the map
  // closing, ends an older pass.
  async showVehicles(list) {
    const gen = (this.showGen = (this.showGen || 0) + 1);
    const seen = new Set();
    const now = Date.now() / 1000;
    const gliding = [];
    let slice = performance.now();
    for (const v of list) {
      if (performance.now() - slice > SLICE_MS) {
        await new Promise((r) => requestAnimationFrame(r));
        if (gen !== this.showGen || !this.map) return;
        slice = performance.now();
      }
      if (!v.position) continue;
      seen.add(v.id);
      const pos = [v.position.lat, v.position.lon];
      let entry = this.vehicles.get(v.id);
      if (!entry) {
        const icon = L.divIcon({ className: `vehicle ${v.kind}`, iconSize: [16, 16], html: "" });
        const layer = this.vehicleLayers[v.kind] || this.vehicleLayers.bus;
        const marker = L.marker(pos, { icon, keyboard: false, riseOnHover: true }).addTo(layer);
        marker.on("click", () => (this.panel ? this.panel.open(v.id) : null));
        entry = { marker, data: v };
        // The tooltip's age is written when the pointer is on the marker, not on every poll.
        marker.on("mouseover", () => {
          const el = marker.getElement();
          const d = entry.data;
          if (el) el.title = `${d.id} · ${t(`kind_${d.kind}`)} · ${age(Date.now() / 1000 - d.position.time)}`;
        });
        this.vehicles.set(v.id, entry);
      } else {
        const old = entry.data.position;
        const moved = old.lat !== v.position.lat || old.lon !== v.position.lon;
        const el = entry.marker.getElement();
        if (!moved && old.time === v.position.time && el && el.dataset.vehicle) {
          entry.data = v;
          el.classList.toggle("stale", now - v.position.time > STALE_S);
          continue; // nothing else to draw
        }
        if (el && moved && list.length <= GLIDE_MAX) {
          // Glide to the new fix (only for this move: a zoom must not animate markers).
          el.classList.add("glide");
          gliding.push(el);
        }
        entry.marker.setLatLng(pos);
        entry.data = v;
      }
      const el = entry.marker.getElement(); // none while its layer is switched off
      if (el) {
        el.dataset.vehicle = v.id;
        el.dataset.lat = String(v.position.lat);
        el.dataset.lon = String(v.position.lon);
        el.classList.toggle("stale", now - v.position.time > STALE_S);
      }
    }
    if (gliding.length) setTimeout(() => gliding.forEach((el) => el.classList.remove("glide")), 1000);
    for (const [id, entry] of this.vehicles) {
      if (!seen.has(id)) {
        entry.marker.remove(); // no longer visible to this user (or no position any more)
        this.vehicles.delete(id);
      }
    }
    this.el.dataset.vehicles = String(this.vehicles.size);
  }

  /** Open incidents with a place: a pulsing mark; clicking it opens the incident's cameras. */
  showIncidents(incidents) {
    this.lastIncidents = incidents; // drawn when the map is first shown
    if (!this.map) return;
    for (const m of this.incidents.values()) m.remove();
    this.incidents.clear();
    for (const inc of incidents) {
      if (inc.lat == null || inc.lon == null || inc.state === "closed") continue;
      const icon = L.divIcon({ className: `incident-mark${inc.overdue ? " overdue" : ""}`, iconSize: [22, 22], html: "" });
      const m = L.marker([inc.lat, inc.lon], { icon, zIndexOffset: 1000 }).addTo(this.incidentLayer);
      m.bindTooltip(`${inc.id} · ${inc.type} · ${inc.area || ""}`);
      m.on("click", () => this.onOpen(inc.cameras, inc.cameras));
      this.incidents.set(inc.id, m);
    }
  }

  // Vehicles of open incidents: where they came from (the route since the alarm, up to TRACK_S).
  async updateTracks() {
    const wanted = new Set(
      (this.lastIncidents || []).filter((i) => i.vehicle_id && i.state !== "closed").map((i) => i.vehicle_id),
    );
    for (const [vid, tr] of this.tracks) {
      if (!wanted.has(vid)) {
        tr.line.remove();
        this.tracks.delete(vid);
      }
    }
    const now = Date.now();
    for (const vid of wanted) {
      const tr = this.tracks.get(vid);
      if (tr && now - tr.at < TRACK_EVERY_MS) {
        // Between fetches the line follows the marker: its newest fix is the vehicle's position.
        const v = this.vehicles.get(vid);
        const pts = tr.line.getLatLngs();
        const last = pts[pts.length - 1];
        if (v && v.data.position && (!last || last.lat !== v.data.position.lat || last.lng !== v.data.position.lon)) {
          tr.line.addLatLng([v.data.position.lat, v.data.position.lon]);
        }
        continue;
      }
      const since = now / 1000 - TRACK_S;
      const r = await api(`/api/vehicles/${encodeURIComponent(vid)}/track?since=${since}`);
      if (!this.map) return;
      if (!r.ok) continue; // not a vehicle this user may see
      const points = (await r.json()).points.map((p) => [p[1], p[2]]);
      if (tr) {
        tr.line.setLatLngs(points);
        tr.at = now;
      } else {
        const line = L.polyline(points, { renderer: this.svg, className: "incident-track", weight: 3, interactive: false });
        line.addTo(this.trackLayer);
        this.tracks.set(vid, { line, at: now });
      }
    }
  }

  relabel() {
    if (!this.map) return;
    this.note.textContent = (this.config().map || {}).tile_url ? "" : t("map_no_tiles");
    this.addLayerControl();
  }
}

function age(s) {
  if (s < 90) return t("unit_seconds", Math.max(0, Math.round(s)));
  if (s < 5400) return t("unit_minutes", Math.round(s / 60));
  return t("unit_hours", Math.round(s / 3600));
}
