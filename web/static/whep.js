// A WHEP viewer (draft-ietf-wish-whep): recvonly WebRTC, non-trickle (every candidate in the offer).
import { csrfToken, errorDetail } from "./api.js";

export class WhepError extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

const GATHER_TIMEOUT_MS = 2000;
// "disconnected" can heal by itself (a lost packet burst); only a lasting one ends the view.
const DISCONNECT_GRACE_MS = 3000;

function gatheringDone(pc, timeoutMs) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, timeoutMs);
    pc.addEventListener("icegatheringstatechange", () => {
      if (pc.iceGatheringState === "complete") {
        clearTimeout(timer);
        resolve();
      }
    });
  });
}

/** One camera over WHEP into one <video>. `onended(state)` fires once if the connection ends by itself. */
export class WhepPlayer {
  constructor(cameraId, video, iceServers) {
    this.cameraId = cameraId;
    this.video = video;
    this.iceServers = iceServers;
    this.location = null;
    this.pc = null;
    this.onended = null;
    this.codec = null;
    this.protocol = "WebRTC";
    this.stopped = false;
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers.map((u) => ({ urls: u })) });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      this.video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    };
    let grace = null;
    pc.onconnectionstatechange = () => {
      const st = pc.connectionState;
      clearTimeout(grace);
      if (st === "failed" || st === "closed") this._ended(st);
      else if (st === "disconnected") grace = setTimeout(() => this._ended(st), DISCONNECT_GRACE_MS);
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc, GATHER_TIMEOUT_MS);
    let r;
    try {
      r = await fetch(`/api/cameras/${encodeURIComponent(this.cameraId)}/whep`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/sdp", "X-CSRF-Token": csrfToken() },
        body: pc.localDescription.sdp,
      });
    } catch (e) {
      this._close();
      throw new WhepError(0, String(e));
    }
    if (r.status !== 201) {
      const detail = await errorDetail(r);
      this._close();
      throw new WhepError(r.status, detail);
    }
    // The session URL, relative (/api/whep/<id>): it is resolved against this page's origin, not the
    // node that answered after a redirect. Every node of a cluster can end any session, and only the
    // console's own origin gets the login cookie and the CSRF header.
    this.location = r.headers.get("Location");
    if (this.stopped) {
      // Closed while the offer was on its way: end the session the server just made.
      await this.stop();
      throw new WhepError(0, "stopped");
    }
    const answer = await r.text();
    const m = answer.match(/a=rtpmap:\d+ ([A-Za-z0-9]+)\/90000/);
    this.codec = m ? m[1] : null;
    await pc.setRemoteDescription({ type: "answer", sdp: answer });
  }

  _ended(state) {
    const cb = this.onended;
    this.onended = null;
    if (cb) cb(state);
  }

  _close() {
    if (this.pc) this.pc.close();
    this.pc = null;
  }

  /** Receive-side figures for the tile: inbound video stats and the round-trip time, or null. */
  async stats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    let inbound = null;
    let rtt = null;
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") inbound = s;
      if (s.type === "candidate-pair" && s.nominated && s.currentRoundTripTime != null) rtt = s.currentRoundTripTime;
    }
    return inbound ? { ...inbound, rtt } : null;
  }

  /** The session's id on the gateway (the last part of its Location), once the offer was answered. */
  get sessionId() {
    return this.location ? this.location.split("/").pop() : null;
  }

  /** End the view: DELETE the session (it ends with "ended by viewer"), then close the peer connection.
   * The DELETE is a keepalive request, so it also goes out while the page unloads. */
  async stop() {
    this.stopped = true;
    this.onended = null;
    const loc = this.location;
    this.location = null;
    if (loc) {
      try {
        await fetch(loc, {
          method: "DELETE",
          credentials: "same-origin",
          keepalive: true,
          headers: { "X-CSRF-Token": csrfToken() },
        });
      } catch (_) {
        /* the server ends it anyway once the peer connection closes */
      }
    }
    this._close();
  }
}
