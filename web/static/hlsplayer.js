// An LL-HLS viewer (hls.js from npm, served at /vendor/hls.mjs) with the WhepPlayer's interface,
// for when WebRTC is disabled, blocked by the network, or missing from the browser.
import { csrfToken, errorDetail } from "./api.js";
import { WhepError } from "./whep.js";

let hlsModule = null;
async function loadHls() {
  if (!hlsModule) hlsModule = import("/vendor/hls.mjs").then((m) => m.default);
  return hlsModule;
}

export class HlsPlayer {
  constructor(cameraId, video) {
    this.cameraId = cameraId;
    this.video = video;
    this.hls = null;
    this.sessionId = null;
    this.onended = null;
    this.codec = null;
    this.protocol = "HLS";
    this.stopped = false;
    this.bytes = 0;
  }

  async start() {
    const base = `/api/cameras/${encodeURIComponent(this.cameraId)}/hls/`;
    // The multivariant playlist opens the session; hls.js then reads the media playlist directly.
    const r = await fetch(base + "index.m3u8", { credentials: "same-origin" });
    if (r.status !== 200) throw new WhepError(r.status, await errorDetail(r));
    this.sessionId = r.headers.get("X-Liandong-Session");
    const text = await r.text();
    const codec = text.match(/CODECS="([^"]+)"/);
    this.codec = codec ? codec[1] : null;
    // Relative to where the playlist came from: in a cluster the request may have been redirected to
    // the node that pulls the camera, and only that node knows the session key (?s=) in the URI.
    const uri = new URL(text.split("\n").find((l) => l && !l.startsWith("#")), r.url).href;
    if (this.stopped) return this.stop();
    const Hls = await loadHls();
    if (!Hls.isSupported()) throw new WhepError(0, "this browser has neither WebRTC nor Media Source Extensions");
    // No worker: the console's CSP allows scripts from this origin only (hls.js would make a blob worker).
    const hls = new Hls({ lowLatencyMode: true, enableWorker: false, backBufferLength: 10, liveSyncDurationCount: 1 });
    this.hls = hls;
    hls.on(Hls.Events.FRAG_LOADED, (_e, data) => {
      this.bytes += data.frag.stats.total || 0;
    });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      if (!data.fatal) return;
      const status = data.response && data.response.code;
      this._ended(status === 410 || status === 403 || status === 401 ? "revoked" : "failed");
    });
    await new Promise((resolve, reject) => {
      hls.once(Hls.Events.MANIFEST_PARSED, resolve);
      hls.once(Hls.Events.ERROR, (_e, data) => data.fatal && reject(new WhepError(0, data.details)));
      hls.loadSource(uri);
      hls.attachMedia(this.video);
    });
    this.video.play().catch(() => {});
  }

  _ended(state) {
    const cb = this.onended;
    this.onended = null;
    if (cb) cb(state);
  }

  /** Figures for the tile, in the shape WhepPlayer.stats() gives. */
  async stats() {
    if (!this.hls) return null;
    const q = this.video.getVideoPlaybackQuality ? this.video.getVideoPlaybackQuality() : null;
    return {
      timestamp: performance.now(),
      bytesReceived: this.bytes,
      framesDecoded: q ? q.totalVideoFrames : 0,
      latency: this.hls.latency,
    };
  }

  async stop() {
    this.stopped = true;
    this.onended = null;
    if (this.hls) this.hls.destroy();
    this.hls = null;
    const id = this.sessionId;
    this.sessionId = null;
    if (id) {
      try {
        await fetch(`/api/sessions/${encodeURIComponent(id)}`, {
          method: "DELETE",
          credentials: "same-origin",
          keepalive: true,
          headers: { "X-CSRF-Token": csrfToken() },
        });
      } catch (_) {
        /* the gateway ends an idle HLS session by itself */
      }
    }
  }
}
