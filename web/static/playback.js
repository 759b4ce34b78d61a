// Playback under a tile: a timeline of what the gateway recorded of the camera in the last hour
// (ranges and gaps), a click plays from that moment (HLS VOD, hls.js, exact start), "live" returns.
// The tile's live player is stopped while playing back and started again after.
import { errorDetail } from "./api.js";

let hlsModule = null;
async function loadHls() {
  if (!hlsModule) hlsModule = import("/vendor/hls.mjs").then((m) => m.default);
  return hlsModule;
}

const SPAN_S = 3600;

export class RecordingTimeline {
  /** `tile` gives cameraId, video, el and start()/stopPlayer(); `onError(text)` shows a problem. */
  constructor(tile, onError) {
    this.tile = tile;
    this.onError = onError;
    this.el = document.createElement("div");
    this.el.className = "tile-timeline";
    this.el.hidden = true;
    this.bar = document.createElement("div");
    this.bar.className = "timeline-bar";
    this.el.append(this.bar);
    this.bar.addEventListener("click", (ev) => {
      const r = this.bar.getBoundingClientRect();
      this.playAt(this.from + ((ev.clientX - r.left) / r.width) * (this.to - this.from));
    });
    this.hls = null;
    this.from = 0;
    this.to = 0;
    this.ranges = [];
    this.incident = null;
  }

  get open() {
    return !this.el.hidden;
  }

  /** Show the camera's recordings of the last hour (or of an incident, around `at`, epoch ms). */
  async show({ incident = null, at = null } = {}) {
    this.incident = incident;
    this.to = Date.now() / 1000;
    this.from = this.to - SPAN_S;
    const q = new URLSearchParams({ start: new Date(this.from * 1000).toISOString(), end: new Date(this.to * 1000).toISOString() });
    if (incident) q.set("incident", incident);
    const r = await fetch(`/api/cameras/${encodeURIComponent(this.tile.cameraId)}/recordings?${q}`, { credentials: "same-origin" });
    if (r.status !== 200) return this.onError(await errorDetail(r));
    const doc = await r.json();
    this.ranges = doc.ranges.map((x) => [Date.parse(x.start) / 1000, Date.parse(x.end) / 1000]);
    this.bar.replaceChildren(
      ...this.ranges.map(([a, b]) => {
        const span = document.createElement("span");
        span.className = "timeline-range";
        span.style.left = `${((a - this.from) / (this.to - this.from)) * 100}%`;
        span.style.width = `${Math.max(((b - a) / (this.to - this.from)) * 100, 0.3)}%`;
        return span;
      }),
    );
    this.el.hidden = false;
    this.tile.el.dataset.recordings = String(this.ranges.length);
    if (at != null) await this.playAt(at / 1000);
  }

  /** Play from `t` (epoch seconds; moved to the next recorded moment when it falls in a gap). */
  async playAt(t) {
    const range = this.ranges.find(([, b]) => b > t);
    if (!range) return this.onError("nothing recorded after this moment");
    const start = Math.max(t, range[0]);
    const q = new URLSearchParams({ start: new Date(start * 1000).toISOString(), end: new Date(this.to * 1000).toISOString() });
    if (this.incident) q.set("incident", this.incident);
    const url = `/api/cameras/${encodeURIComponent(this.tile.cameraId)}/recordings/index.m3u8?${q}`;
    await this.tile.stopPlayer();
    if (this.hls) this.hls.destroy();
    const Hls = await loadHls();
    // No worker: the console's CSP allows scripts from this origin only.
    const hls = new Hls({ enableWorker: false, xhrSetup: (xhr) => (xhr.withCredentials = true) });
    this.hls = hls;
    hls.on(Hls.Events.ERROR, (_e, data) => data.fatal && this.onError(data.details));
    hls.loadSource(url);
    hls.attachMedia(this.tile.video);
    this.tile.el.dataset.mode = "playback";
    this.tile.el.dataset.playbackStart = String(start);
    this.tile.video.play().catch(() => {});
  }

  /** Back to live. */
  async hide() {
    if (this.hls) this.hls.destroy();
    this.hls = null;
    this.el.hidden = true;
    delete this.tile.el.dataset.mode;
  }
}
