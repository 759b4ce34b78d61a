// PTZ control on a playing tile: arrows (hold to move) or drag on the picture for pan/tilt, the
// wheel for zoom, preset buttons. Shown only where GET /api/cameras/{id}/ptz answers (the user may
// steer and the camera has PTZ). A move is a continuous move with a short timeout, renewed while the
// button is held: a browser that goes away stops renewing and the camera stops by itself (and the
// gateway sends Stop when the timeout runs out).
import { api } from "./api.js";
import { t } from "./i18n.js";

const RENEW_MS = 400;
const MOVE_TIMEOUT_S = 1;
const DIRS = [
  ["up", "▲", 0, 0.5],
  ["left", "◀", -0.5, 0],
  ["right", "▶", 0.5, 0],
  ["down", "▼", 0, -0.5],
];

export class PtzControl {
  constructor(tile) {
    this.tile = tile;
    this.url = `/api/cameras/${encodeURIComponent(tile.cameraId)}/ptz`;
    this.el = null;
    this.renew = null;
    this.wheelTimer = null;
  }

  /** Ask the gateway; add the control to the tile if the user may steer this camera. */
  async attach() {
    const r = await api(this.url);
    if (!r.ok) return false; // 403: may not steer; 404: no PTZ
    const status = await r.json();
    this.build(status);
    return true;
  }

  build(status) {
    const el = document.createElement("div");
    el.className = "ptz";
    const pad = document.createElement("div");
    pad.className = "ptz-pad";
    for (const [name, label, pan, tilt] of DIRS) {
      const b = button(label, `ptz-${name}`, t(`ptz_${name}`));
      b.addEventListener("pointerdown", (ev) => {
        ev.preventDefault();
        this.move(pan, tilt, 0);
      });
      for (const end of ["pointerup", "pointerleave", "pointercancel"]) b.addEventListener(end, () => this.stop());
      pad.append(b);
    }
    const zoomIn = button("+", "ptz-zoom-in", t("ptz_zoom_in"));
    const zoomOut = button("−", "ptz-zoom-out", t("ptz_zoom_out"));
    for (const [b, z] of [[zoomIn, 0.5], [zoomOut, -0.5]]) {
      b.addEventListener("pointerdown", (ev) => {
        ev.preventDefault();
        this.move(0, 0, z);
      });
      for (const end of ["pointerup", "pointerleave", "pointercancel"]) b.addEventListener(end, () => this.stop());
    }
    pad.append(zoomIn, zoomOut);
    const presets = document.createElement("div");
    presets.className = "ptz-presets";
    for (const p of status.presets || []) {
      const b = button(p.name || p.token, "ptz-preset", t("ptz_goto"));
      b.addEventListener("click", () => this.send({ op: "goto_preset", preset: p.token }));
      presets.append(b);
    }
    this.note = document.createElement("p");
    this.note.className = "ptz-note";
    this.note.setAttribute("role", "status");
    el.append(pad, presets, this.note);
    this.el = el;
    this.tile.el.append(el);
    this.tile.video.addEventListener("wheel", (ev) => this.wheel(ev), { passive: false });
    if (status.holder && !status.holder.you) this.showHolder(status.holder, status.holder.seconds_left);
  }

  wheel(ev) {
    ev.preventDefault();
    this.move(0, 0, ev.deltaY < 0 ? 0.5 : -0.5);
    clearTimeout(this.wheelTimer);
    this.wheelTimer = setTimeout(() => this.stop(), 300);
  }

  move(pan, tilt, zoom) {
    clearInterval(this.renew);
    const body = { op: "continuous", pan, tilt, zoom, timeout_s: MOVE_TIMEOUT_S };
    this.send(body);
    this.renew = setInterval(() => this.send(body), RENEW_MS);
  }

  stop() {
    if (this.renew == null) return;
    clearInterval(this.renew);
    this.renew = null;
    this.send({ op: "stop" });
  }

  async send(body) {
    const r = await api(this.url, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    if (r.ok) {
      this.el.dataset.state = "holding";
      this.note.textContent = "";
      return;
    }
    clearInterval(this.renew);
    this.renew = null;
    const data = await r.json().catch(() => ({}));
    if (r.status === 409 && data.holder) this.showHolder(data.holder, data.seconds_left);
    else if (r.status === 409 && data.locked_by_incident) {
      this.el.dataset.state = "locked";
      this.note.textContent = t("ptz_locked", data.locked_by_incident, data.seconds_left);
    } else if (r.status === 429) this.note.textContent = t("ptz_too_fast");
    else this.note.textContent = t("ptz_failed");
  }

  showHolder(holder, seconds) {
    this.el.dataset.state = "held";
    this.note.textContent = t("ptz_held", holder.unit_name || holder.unit || holder.username, Math.ceil(seconds));
  }

  /** The tile closes: stop a running move and let go of the camera. */
  async detach() {
    if (this.renew != null) this.stop();
    if (this.el) {
      this.el.remove();
      await api(`${this.url}/hold`, { method: "DELETE", keepalive: true }).catch(() => {});
    }
    this.el = null;
  }
}

function button(label, cls, title) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = `ptz-btn ${cls}`;
  b.textContent = label;
  b.title = title;
  return b;
}
