// The camera list: virtualised (only the rows on screen exist), fetched page by page, with live
// thumbnails for the rows on screen. Built for 20,000 cameras: the DOM holds a few dozen rows.
import { api } from "./api.js";
import { t } from "./i18n.js";

const PAGE = 200; // cameras per API call (the API allows up to 1000)
const ROW_H = 60; // px; must match .cam height in style.css
const OVERSCAN = 4; // rows rendered above and below the visible ones
const SETTLE_MS = 150; // thumbnails load once scrolling pauses this long
const THUMB_WIDTH = 160; // one of settings.snapshot.widths
const THUMB_CACHE = 400; // thumbnails kept as object URLs

export class CameraList {
  /** `scroller` scrolls, `ul` holds the rows; `onOpen(cam, t0)` opens a camera, `onLoaded(total)` reports counts. */
  constructor(scroller, ul, { onOpen, onLoaded, deptName }) {
    this.scroller = scroller;
    this.deptName = deptName || ((id) => id); // units by name, never by id
    this.ul = ul;
    this.onOpen = onOpen;
    this.onLoaded = onLoaded;
    this.query = "";
    this.gen = 0;
    this.total = null;
    this.pages = new Map(); // page number -> items, or a Promise while loading
    this.rows = new Map(); // row index -> <li>
    this.thumbs = new Map(); // camera id -> {url, etag, at, stale, offline}; insertion order = LRU
    this.refreshMs = 10_000;
    this.settleTimer = null;
    this.refreshTimer = null;
    this.frame = 0;
    scroller.addEventListener("scroll", () => this.schedule(), { passive: true });
    new ResizeObserver(() => this.schedule()).observe(scroller);
  }

  /** Show the cameras matching `params` (URLSearchParams of the list filters), from the top. */
  async reload(params) {
    this.query = params.toString();
    this.gen += 1;
    this.pages.clear();
    for (const li of this.rows.values()) li.remove();
    this.rows.clear();
    this.total = null;
    this.scroller.scrollTop = 0;
    this.ul.dataset.state = "loading";
    await this.loadPage(0);
    this.startRefresh();
  }

  /** Stop timers and free the thumbnails (logout). */
  stop() {
    clearTimeout(this.settleTimer);
    clearInterval(this.refreshTimer);
    this.refreshTimer = null;
    for (const li of this.rows.values()) li.remove();
    this.rows.clear();
    this.pages.clear();
    for (const th of this.thumbs.values()) if (th.url) URL.revokeObjectURL(th.url);
    this.thumbs.clear();
    this.gen += 1;
    this.total = null;
    this.ul.style.height = "0px";
    this.ul.dataset.state = "";
  }

  /** The camera record if its page is loaded (to name a tile opened by an alarm or a link). */
  find(cameraId) {
    for (const items of this.pages.values()) {
      if (Array.isArray(items)) {
        const cam = items.find((c) => c.id === cameraId);
        if (cam) return cam;
      }
    }
    return null;
  }

  loadPage(p, { force = false } = {}) {
    const have = this.pages.get(p);
    if (have instanceof Promise) return have;
    if (have && !force) return Promise.resolve(have);
    const gen = this.gen;
    const q = new URLSearchParams(this.query);
    q.set("offset", String(p * PAGE));
    q.set("limit", String(PAGE));
    const promise = (async () => {
      const r = await api(`/api/cameras?${q}`);
      if (gen !== this.gen) return null;
      if (!r.ok) {
        if (!have) this.pages.delete(p);
        this.ul.dataset.state = "failed";
        this.ul.dataset.message = t("list_failed");
        return null;
      }
      const body = await r.json();
      if (gen !== this.gen) return null;
      this.pages.set(p, body.items);
      if (this.total !== body.total) {
        this.total = body.total;
        this.ul.style.height = `${this.total * ROW_H}px`;
        this.onLoaded(this.total);
      }
      this.ul.dataset.state = this.total === 0 ? "empty" : "ready";
      this.ul.dataset.message = this.total === 0 ? t("list_empty") : "";
      this.render(force);
      return body.items;
    })();
    if (!have) this.pages.set(p, promise);
    return promise;
  }

  schedule() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      this.render(false);
    });
  }

  visibleRange() {
    const first = Math.max(0, Math.floor(this.scroller.scrollTop / ROW_H) - OVERSCAN);
    const shown = Math.ceil(this.scroller.clientHeight / ROW_H) + 2 * OVERSCAN;
    return [first, Math.min(this.total ?? 0, first + shown)];
  }

  render(updateData) {
    if (this.total == null) return;
    const [from, to] = this.visibleRange();
    for (const [i, li] of this.rows) {
      if (i < from || i >= to) {
        li.remove();
        this.rows.delete(i);
      }
    }
    for (let i = from; i < to; i++) {
      const items = this.pages.get(Math.floor(i / PAGE));
      const cam = Array.isArray(items) ? items[i % PAGE] : null;
      if (!Array.isArray(items)) this.loadPage(Math.floor(i / PAGE));
      let li = this.rows.get(i);
      if (li && (li.dataset.camera || "") === (cam ? cam.id : "") && !updateData) continue;
      const fresh = this.row(i, cam);
      if (li) li.replaceWith(fresh);
      else this.ul.append(fresh);
      this.rows.set(i, fresh);
      li = fresh;
    }
    clearTimeout(this.settleTimer);
    this.settleTimer = setTimeout(() => this.settled(), SETTLE_MS);
  }

  /** Re-render the rows' texts (language switch). */
  relabel() {
    this.render(true);
    if (this.ul.dataset.state === "empty") this.ul.dataset.message = t("list_empty");
  }

  row(i, cam) {
    const li = document.createElement("li");
    li.className = "cam";
    li.style.top = `${i * ROW_H}px`;
    if (!cam) {
      li.classList.add("pending");
      li.textContent = t("loading");
      return li;
    }
    li.dataset.camera = cam.id;
    li.tabIndex = 0;
    const thumb = document.createElement("img");
    thumb.className = "thumb";
    thumb.alt = "";
    const name = document.createElement("span");
    name.className = "cam-name";
    name.textContent = cam.name;
    name.title = cam.id;
    const badge = document.createElement("span");
    const [cls, text] = badgeOf(cam);
    badge.className = `badge ${cls}`;
    badge.textContent = text;
    const meta = document.createElement("span");
    meta.className = "cam-meta";
    const dept = cam.department ? this.deptName(cam.department) : "";
    meta.textContent = [cam.id, cam.area, cam.station, t(`kind_${cam.kind}`), dept].filter(Boolean).join(" · ");
    li.append(thumb, name, badge, meta);
    const th = this.thumbs.get(cam.id);
    if (th) this.showThumb(thumb, th);
    const open = () => this.onOpen(cam, performance.now());
    li.addEventListener("click", open);
    li.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        open();
      }
    });
    return li;
  }

  // Once scrolling pauses: thumbnails for the rows on screen, and tell the refresher what we show.
  settled() {
    const ids = this.shownIds();
    for (const li of this.rows.values()) {
      const id = li.dataset.camera;
      if (!id) continue;
      const th = this.thumbs.get(id);
      if (!th || performance.now() - th.at > this.refreshMs) this.loadThumb(id);
    }
    if (ids.length) this.reportInterest(ids);
  }

  shownIds() {
    return [...this.rows.values()].map((li) => li.dataset.camera).filter(Boolean);
  }

  async loadThumb(id) {
    const prev = this.thumbs.get(id);
    let r;
    try {
      // no-cache: the browser revalidates with If-None-Match, so an unchanged thumbnail costs a 304.
      r = await api(`/api/cameras/${encodeURIComponent(id)}/snapshot.jpg?width=${THUMB_WIDTH}`, { cache: "no-cache" });
    } catch (_) {
      return;
    }
    let th;
    const cameraStatus = r.headers.get("X-Camera-Status"); // what the snapshot pull found just now
    if (r.ok) {
      const etag = r.headers.get("ETag");
      const stale = r.headers.has("X-Snapshot-Stale");
      if (prev && prev.url && etag && prev.etag === etag) {
        th = { ...prev, at: performance.now(), stale, cameraStatus };
      } else {
        const url = URL.createObjectURL(await r.blob());
        th = { url, etag, at: performance.now(), stale, offline: false, cameraStatus };
        if (prev && prev.url) URL.revokeObjectURL(prev.url);
      }
    } else if (r.status === 503) {
      th = {
        url: prev ? prev.url : null,
        etag: prev ? prev.etag : null,
        at: performance.now(),
        stale: true,
        offline: true,
        cameraStatus,
      };
    } else {
      return;
    }
    this.thumbs.delete(id);
    this.thumbs.set(id, th);
    this.evictThumbs();
    for (const li of this.rows.values()) {
      if (li.dataset.camera === id) this.showThumb(li.querySelector(".thumb"), th);
    }
  }

  showThumb(img, th) {
    if (th.url && img.src !== th.url) img.src = th.url;
    img.classList.toggle("stale", th.stale);
    img.classList.toggle("offline", th.offline && !th.url);
    img.title = th.stale ? t("thumb_stale") : "";
    // Without a live stream the badge shows the camera's status; the snapshot pull is the freshest word.
    const badge = img.parentElement && img.parentElement.querySelector(".badge");
    if (badge && th.cameraStatus && [...badge.classList].some((c) => c.startsWith("status-"))) {
      badge.className = `badge status-${th.cameraStatus}`;
      badge.textContent = t(`status_${th.cameraStatus}`);
    }
  }

  evictThumbs() {
    if (this.thumbs.size <= THUMB_CACHE) return;
    const shown = new Set(this.shownIds());
    for (const [id, th] of this.thumbs) {
      if (this.thumbs.size <= THUMB_CACHE) break;
      if (shown.has(id)) continue;
      if (th.url) URL.revokeObjectURL(th.url);
      this.thumbs.delete(id);
    }
  }

  async reportInterest(ids) {
    const body = JSON.stringify({ camera_ids: ids.slice(0, 2000), width: THUMB_WIDTH });
    const r = await api("/api/snapshots/interest", { method: "POST", headers: { "Content-Type": "application/json" }, body });
    if (r.ok) {
      const reply = await r.json();
      const ms = Math.max(2000, Math.min((reply.refresh_interval_s || 10) * 1000, ((reply.ttl_s || 60) * 1000) / 2));
      if (ms !== this.refreshMs) {
        this.refreshMs = ms;
        this.startRefresh();
      }
    }
  }

  // While rows stay on screen: fresher thumbnails and statuses, and the interest kept alive.
  startRefresh() {
    clearInterval(this.refreshTimer);
    this.refreshTimer = setInterval(() => {
      if (this.total == null || document.hidden) return;
      const [from, to] = this.visibleRange();
      const pages = new Set();
      for (let i = from; i < to; i++) pages.add(Math.floor(i / PAGE));
      for (const p of pages) this.loadPage(p, { force: true });
      this.settled();
    }, this.refreshMs);
  }
}

/** The row's badge: the live stream's state when the gateway has one, else the last probe's result. */
function badgeOf(cam) {
  const st = cam.stream ? cam.stream.state : "idle";
  if (st && st !== "idle") return [`stream-${st}`, t(`stream_${st}`)];
  return [`status-${cam.status || "unknown"}`, t(`status_${cam.status || "unknown"}`)];
}
