// A WHEP viewer (RFC 9725): recvonly WebRTC, non-trickle (all candidates in the offer).

function csrfToken() {
  const m = document.cookie.match(/(?:^|;\s*)liandong_csrf=([^;]+)/);
  return m ? decodeURIComponent(m[1]) : "";
}

export class WhepError extends Error {
  constructor(status, detail) {
    super(typeof detail === "string" ? detail : JSON.stringify(detail));
    this.status = status;
  }
}

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

export class WhepPlayer {
  constructor(cameraId, video, iceServers) {
    this.cameraId = cameraId;
    this.video = video;
    this.iceServers = iceServers;
    this.location = null;
    this.pc = null;
    this.onended = null;
  }

  async start() {
    const pc = new RTCPeerConnection({ iceServers: this.iceServers.map((u) => ({ urls: u })) });
    this.pc = pc;
    pc.addTransceiver("video", { direction: "recvonly" });
    pc.ontrack = (ev) => {
      this.video.srcObject = ev.streams[0] || new MediaStream([ev.track]);
    };
    pc.onconnectionstatechange = () => {
      if (["failed", "closed", "disconnected"].includes(pc.connectionState) && this.onended) {
        const cb = this.onended;
        this.onended = null;
        cb(pc.connectionState);
      }
    };
    await pc.setLocalDescription(await pc.createOffer());
    await gatheringDone(pc, 2000);
    const r = await fetch(`/api/cameras/${encodeURIComponent(this.cameraId)}/whep`, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/sdp", "X-CSRF-Token": csrfToken() },
      body: pc.localDescription.sdp,
    });
    if (r.status !== 201) {
      let detail = r.statusText;
      try {
        detail = (await r.json()).detail;
      } catch (_) {
        /* not JSON */
      }
      pc.close();
      throw new WhepError(r.status, detail);
    }
    this.location = r.headers.get("Location");
    await pc.setRemoteDescription({ type: "answer", sdp: await r.text() });
  }

  async stats() {
    if (!this.pc) return null;
    const report = await this.pc.getStats();
    for (const s of report.values()) {
      if (s.type === "inbound-rtp" && s.kind === "video") return s;
    }
    return null;
  }

  async stop() {
    this.onended = null;
    if (this.pc) this.pc.close();
    this.pc = null;
    if (this.location) {
      const loc = this.location;
      this.location = null;
      await fetch(loc, { method: "DELETE", credentials: "same-origin", headers: { "X-CSRF-Token": csrfToken() } });
    }
  }
}

export { csrfToken };
