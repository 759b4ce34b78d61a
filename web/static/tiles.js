// The live wall: a 1/4/9/16 grid of tiles, each one camera over WHEP. Closing a tile ends its session.
import { api, errorDetail, notifyUnauthorized } from "./api.js";
import { serverText, t } from "./i18n.js";
import { HlsPlayer } from "./hlsplayer.js";
import { PtzControl } from "./ptz.js";
import { RecordingTimeline } from "./playback.js";
import { WhepError, WhepPlayer } from "./whep.js";

// What the tile says for each refusal of the WHEP POST (the server's detail is shown for the rest).
const REFUSALS = { 401: "session_expired", 403: "denied", 404: "not_found", 415: "codec", 429: "busy", 503: "unavailable" };
const RETRY_DELAYS_MS = [250, 1000, 4000]; // a stream that ends by itself is retried after these waits
const AUTO_RETRIES = RETRY_DELAYS_MS.length; // before the tile gives up
const RETRYABLE = new Set(["unavailable", "busy", "failed", "ended"]);
const RECONNECT_AGAIN = new Set(["unavailable", "busy", "failed"]); // start failures an automatic reconnect retries
const STALL_CHECK_S = 2; // seconds without video before asking the gateway whether the session lives
export const LAYOUTS = [1, 4, 9, 16];

export class TileGrid {
  /** `grid` holds the tiles, cloned from `template`; `config()` gives the console config (ICE servers). */
  constructor(grid, template, config) {
    this.grid = grid;
    this.template = template;
    this.config = config;
    this.tiles = new Map(); // camera id -> Tile, oldest first
    this.dragged = null;
  }

  /** The tiles in screen order (drag and drop rearranges the screen, not their age). */
  order() {
    return [...this.grid.querySelectorAll(".tile")].map((el) => el.dataset.camera);
  }

  /** Put these cameras' tiles first, in this order, marked as the incident's. */
  toFront(cameraIds, incidentId) {
    for (const id of [...cameraIds].reverse()) {
      const tile = this.tiles.get(id);
      if (!tile) continue;
      tile.el.dataset.incident = incidentId;
      tile.el.classList.add("incident");
      this.grid.prepend(tile.el);
    }
  }

  // Drag a tile by its title bar onto another: the two swap places.
  swap(a, b) {
    if (a === b) return;
    const marker = document.createComment("");
    a.el.replaceWith(marker);
    b.el.replaceWith(a.el);
    marker.replaceWith(b.el);
  }

  get layout() {
    return Number(this.grid.dataset.layout);
  }

  /** Switch to an n-tile layout; tiles that no longer fit are closed, oldest first. */
  async setLayout(n) {
    this.grid.dataset.layout = String(n);
    while (this.tiles.size > n) await this.tiles.values().next().value.close();
  }

  /** Open a camera (a camera already open is only highlighted). `t0` = when the operator asked, for timing. */
  async open(cameraId, name, t0 = performance.now()) {
    const open = this.tiles.get(cameraId);
    if (open) {
      open.flash();
      return open;
    }
    // Not awaited: close() leaves the map at once, so a second click cannot open the camera twice.
    if (this.tiles.size >= this.layout) this.tiles.values().next().value.close();
    const tile = new Tile(this, cameraId, name || cameraId, t0);
    this.tiles.set(cameraId, tile);
    this.grid.append(tile.el);
    await tile.start();
    return tile;
  }

  async closeAll() {
    await Promise.all([...this.tiles.values()].map((tile) => tile.close()));
  }

  /** Page unload: end every session without waiting (the DELETEs are keepalive requests). */
  abandon() {
    for (const tile of this.tiles.values()) if (tile.player) tile.player.stop();
  }

  relabel() {
    for (const tile of this.tiles.values()) tile.relabel();
  }
}

class Tile {
  constructor(grid, cameraId, name, t0) {
    this.grid = grid;
    this.cameraId = cameraId;
    this.t0 = t0;
    this.el = grid.template.content.firstElementChild.cloneNode(true);
    this.el.dataset.camera = cameraId;
    this.video = this.el.querySelector("video");
    this.msg = this.el.querySelector(".tile-msg");
    this.info = this.el.querySelector(".tile-info");
    this.title = this.el.querySelector(".tile-title");
    this.retryButton = this.el.querySelector(".tile-retry");
    this.title.textContent = name;
    this.title.title = cameraId;
    const closeButton = this.el.querySelector(".tile-close");
    closeButton.addEventListener("click", () => this.close());
    this.retryButton.addEventListener("click", () => this.retry());
    this.el.querySelector(".tile-full").addEventListener("click", () => this.toggleFullscreen());
    this.video.addEventListener("dblclick", () => this.toggleFullscreen());
    this.snap = this.el.querySelector(".tile-snap");
    this.snap.href = this.snapshotUrl();
    this.snap.addEventListener("click", (ev) => {
      ev.preventDefault();
      this.downloadSnapshot();
    });
    this.timeline = new RecordingTimeline(this, (why) => {
      this.el.dataset.playbackError = why;
      this.msg.textContent = why;
    });
    this.video.after(this.timeline.el);
    this.el.querySelector(".tile-rec").addEventListener("click", () => this.togglePlayback());
    this.wireDrag();
    this.relabelButtons();
    this.player = null;
    this.timer = null;
    this.statusKey = null;
    this.detail = undefined;
    this.firstFrameMs = null;
    this.last = null;
    this.stalled = 0;
    this.autoRetries = 0;
    this.retryTimer = null;
    this.ptz = null;
  }

  relabel() {
    if (this.statusKey) this.setStatus(this.statusKey, this.detail);
    this.retryButton.textContent = t("retry");
    this.relabelButtons();
  }

  relabelButtons() {
    this.el.querySelector(".tile-close").title = t("close");
    this.el.querySelector(".tile-full").title = t("fullscreen");
    this.el.querySelector(".tile-rec").title = t("playback");
    this.snap.title = t("snapshot");
  }

  wireDrag() {
    const head = this.el.querySelector(".tile-head");
    head.addEventListener("dragstart", (ev) => {
      this.grid.dragged = this;
      ev.dataTransfer.effectAllowed = "move";
      ev.dataTransfer.setData("text/plain", this.cameraId);
      this.el.classList.add("dragging");
    });
    head.addEventListener("dragend", () => {
      this.grid.dragged = null;
      this.el.classList.remove("dragging");
      for (const el of this.grid.grid.querySelectorAll(".drop-target")) el.classList.remove("drop-target");
    });
    this.el.addEventListener("dragover", (ev) => {
      if (!this.grid.dragged || this.grid.dragged === this) return;
      ev.preventDefault();
      ev.dataTransfer.dropEffect = "move";
      this.el.classList.add("drop-target");
    });
    this.el.addEventListener("dragleave", () => this.el.classList.remove("drop-target"));
    this.el.addEventListener("drop", (ev) => {
      ev.preventDefault();
      this.el.classList.remove("drop-target");
      const from = this.grid.dragged;
      if (from && from !== this) this.grid.swap(from, this);
    });
  }

  // A full-size picture from the gateway (privacy masks applied, like every snapshot), saved as a
  // file named after the camera and the time; a refusal or an offline camera is said in the tile.
  snapshotUrl() {
    return `/api/cameras/${encodeURIComponent(this.cameraId)}/snapshot.jpg?width=${this.grid.config().snapshot_width || 1280}`;
  }

  async downloadSnapshot() {
    this.snap.classList.add("busy");
    let r;
    try {
      r = await api(this.snapshotUrl(), { cache: "no-store" });
    } catch (e) {
      r = null;
    } finally {
      this.snap.classList.remove("busy");
    }
    if (!r || !r.ok) {
      const why = r ? (REFUSALS[r.status] ? t(REFUSALS[r.status]) : serverText(await errorDetail(r))) : t("failed");
      this.snap.title = `${t("snapshot_failed")}: ${why}`;
      this.el.dataset.snapshot = "failed";
      return;
    }
    const url = URL.createObjectURL(await r.blob());
    const a = document.createElement("a");
    a.href = url;
    a.download = `${this.cameraId}-${stamp(new Date())}.jpg`;
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10_000);
    this.snap.title = t("snapshot");
    this.el.dataset.snapshot = "saved";
  }

  toggleFullscreen() {
    if (document.fullscreenElement === this.el) document.exitFullscreen();
    else this.el.requestFullscreen().catch(() => {});
  }

  setStatus(key, detail) {
    this.statusKey = key;
    this.detail = detail;
    this.msg.textContent = t(key) + (detail ? ` (${detail})` : "");
    this.el.dataset.state = key;
    this.retryButton.hidden = !RETRYABLE.has(key);
    this.retryButton.textContent = t("retry");
  }

  flash() {
    this.el.classList.remove("flash");
    void this.el.offsetWidth; // restart the animation
    this.el.classList.add("flash");
  }

  /** WebRTC when the gateway and the browser have it, else LL-HLS. */
  makePlayer(forceHls) {
    const cfg = this.grid.config();
    const webrtc = cfg.webrtc !== false && typeof window.RTCPeerConnection === "function";
    if (forceHls || (!webrtc && cfg.hls !== false)) return new HlsPlayer(this.cameraId, this.video);
    return new WhepPlayer(this.cameraId, this.video, cfg.ice_servers || []);
  }

  async start(forceHls = false) {
    this.setStatus("connecting");
    this.el.classList.remove("ended");
    const player = await this.startPlayer(forceHls);
    if (!player || this.player !== player) return;
    this.watchFirstFrame(player);
    this.timer = setInterval(() => this.updateInfo(), 1000);
    if (this.title.textContent === this.cameraId) this.lookUpName();
  }

  /** The one place a tile's player is made and started: WebRTC (WHEP) when the gateway and the browser
   * have it, else LL-HLS; a WebRTC start that fails on the network falls back to HLS once. Returns the
   * started player, or null after showing why it could not start (or when the fallback took over).
   * A player has start(), stop(), stats(), codec, protocol, sessionId and calls onended() when the server ends it. */
  async startPlayer(forceHls) {
    const player = this.makePlayer(forceHls);
    this.player = player;
    this.el.dataset.protocol = player instanceof HlsPlayer ? "hls" : "webrtc";
    player.onended = (state) => {
      // WebRTC that never got going (ICE blocked by a firewall): try HLS once.
      if (!(player instanceof HlsPlayer) && this.firstFrameMs == null && state === "failed") return this.fallBack(player);
      return this.onServerEnd();
    };
    try {
      await player.start();
    } catch (e) {
      if (this.player !== player) return null; // closed meanwhile
      const status = e instanceof WhepError ? e.status : 0;
      const key = REFUSALS[status] || "failed";
      // Reconnecting after a drop: a gateway node that just died may still be named as the camera's
      // owner for a moment (the redirect to it fails), or the camera is not free yet (503). That says
      // nothing about WebRTC, which played before: keep trying, without falling back to HLS.
      if (this.autoRetries > 0 && RECONNECT_AGAIN.has(key) && this.autoRetries < AUTO_RETRIES) {
        this.player = null;
        await player.stop();
        this.scheduleRetry();
        return null;
      }
      if (!(player instanceof HlsPlayer) && status === 0) {
        await this.fallBack(player);
        return null;
      }
      this.player = null;
      this.setStatus(key, key === "failed" ? e.message : undefined);
      if (status === 401) notifyUnauthorized();
      return null;
    }
    return player;
  }

  async fallBack(player) {
    if (this.player !== player) return;
    this.player = null;
    await player.stop();
    await this.start(true);
  }

  watchFirstFrame(player) {
    const first = () => {
      if (this.player !== player) return;
      this.firstFrameMs = Math.round(performance.now() - this.t0);
      this.el.dataset.firstFrameMs = String(this.firstFrameMs);
      this.autoRetries = 0; // playing again: a later drop gets its retries afresh
      this.setStatus("playing");
      if (!this.ptz) {
        // Steering is offered only where the gateway says this user may steer this camera.
        this.ptz = new PtzControl(this);
        this.ptz.attach().catch(() => {});
      }
    };
    if ("requestVideoFrameCallback" in this.video) this.video.requestVideoFrameCallback(first);
    else this.video.addEventListener("playing", first, { once: true });
  }

  async lookUpName() {
    const r = await api(`/api/cameras/${encodeURIComponent(this.cameraId)}`);
    if (r.ok) this.title.textContent = (await r.json()).name;
  }

  async updateInfo() {
    const s = this.player && (await this.player.stats());
    if (!s) return;
    const parts = [this.player.protocol || "WebRTC"];
    if (this.player.codec) parts.push(this.player.codec);
    if (this.video.videoWidth) parts.push(`${this.video.videoWidth}×${this.video.videoHeight}`);
    if (s.framesPerSecond) parts.push(`${Math.round(s.framesPerSecond)} fps`);
    if (this.last && s.timestamp > this.last.timestamp) {
      const kbps = ((s.bytesReceived - this.last.bytesReceived) * 8) / (s.timestamp - this.last.timestamp);
      parts.push(`${Math.round(kbps)} kbit/s`);
    }
    // Receive side only (jitter buffer + half the round trip); the camera's own delay is not known here.
    if (s.latency) parts.push(`${t("latency")} ≈${s.latency.toFixed(1)} s`);
    if (s.jitterBufferEmittedCount) {
      const ms = (s.jitterBufferDelay / s.jitterBufferEmittedCount) * 1000 + (s.rtt || 0) * 500;
      parts.push(`${t("latency")} ≈${Math.round(ms)} ms`);
    }
    if (this.firstFrameMs != null) parts.push(`${t("first_frame")} ${(this.firstFrameMs / 1000).toFixed(2)} s`);
    this.info.textContent = parts.join(" · ");
    this.info.title = this.info.textContent; // the whole line, when a small tile cuts it
    // No bytes for a while: the gateway may have ended the session (a withdrawn permission, an admin).
    // The browser would notice only when ICE consent expires (~10 s); ask the gateway instead.
    this.stalled = this.last && s.bytesReceived === this.last.bytesReceived ? this.stalled + 1 : 0;
    if (this.stalled === STALL_CHECK_S || (this.stalled > STALL_CHECK_S && this.stalled % 5 === 0)) this.checkSession();
    this.last = s;
  }

  async checkSession() {
    const player = this.player;
    const id = player && player.sessionId;
    if (!id || player instanceof HlsPlayer) return; // hls.js reports a revoked session itself (410/403)
    const r = await api(`/api/sessions?camera_id=${encodeURIComponent(this.cameraId)}`, { quiet401: true });
    if (this.player !== player) return;
    if (r.status === 401 || (r.ok && !(await r.json()).some((x) => x.id === id))) this.onServerEnd();
  }

  // The connection ended without us closing it: find out why (a withdrawn permission says so).
  async onServerEnd() {
    const player = this.player;
    if (!player) return; // already ended (the connection state and the stall check can both notice)
    clearInterval(this.timer);
    this.player = null;
    await player.stop();
    this.el.classList.add("ended");
    const r = await api(`/api/cameras/${encodeURIComponent(this.cameraId)}`, { quiet401: true });
    const key = { 401: "session_expired", 403: "revoked", 404: "not_found" }[r.status] || "ended";
    // Ended for no reason of ours (a gateway node went away, the network dropped) and the camera is
    // still ours to watch: come back by ourselves.
    if (key === "ended" && r.ok && this.scheduleRetry()) return;
    this.setStatus(key);
    if (r.status === 401) notifyUnauthorized();
  }

  /** Try again by ourselves, backing off (0.25, 1, 4 s: the first soon, since a node that gets the
   * request while a dead owner's lease runs holds it until the lease is free, so waiting here only adds
   * to the gap); false once those retries are used up (the tile
   * then shows why, with its retry button). Playing again gives the next drop its retries afresh. */
  scheduleRetry() {
    if (this.autoRetries >= AUTO_RETRIES || this.grid.tiles.get(this.cameraId) !== this) return false;
    const delay = RETRY_DELAYS_MS[this.autoRetries++];
    this.setStatus("reconnecting");
    this.retryTimer = setTimeout(() => {
      if (this.grid.tiles.get(this.cameraId) === this && !this.player) this.retry();
    }, delay);
    return true;
  }

  /** Recordings under the tile (the live player stops), or back to live. */
  async togglePlayback(opts = {}) {
    if (this.timeline.open) {
      await this.timeline.hide();
      return this.retry();
    }
    await this.timeline.show(opts);
  }

  /** Stop the live player (playback takes the video element). */
  async stopPlayer() {
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    const player = this.player;
    this.player = null;
    if (player) await player.stop();
    this.video.srcObject = null;
  }

  async retry() {
    clearInterval(this.timer);
    this.t0 = performance.now();
    this.firstFrameMs = null;
    this.last = null;
    this.stalled = 0;
    delete this.el.dataset.firstFrameMs;
    await this.start();
  }

  async close() {
    clearInterval(this.timer);
    clearTimeout(this.retryTimer);
    if (document.fullscreenElement === this.el) document.exitFullscreen().catch(() => {});
    if (this.grid.tiles.get(this.cameraId) === this) this.grid.tiles.delete(this.cameraId);
    this.el.remove();
    await this.timeline.hide();
    const ptz = this.ptz;
    this.ptz = null;
    if (ptz) await ptz.detach();
    const player = this.player;
    this.player = null;
    if (player) await player.stop();
  }
}

/** 20261128-101500: a file name part that sorts by time. */
function stamp(d) {
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}${p(d.getMonth() + 1)}${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`;
}
