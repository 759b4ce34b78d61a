// The alarm panel: incidents the user may see, newest first, with their deadlines counting down;
// the steps the gateway says this user may take (acknowledge, dispatch, note, ...); a beep on a new
// alarm. The list reloads when the event stream says an incident changed.
import { api, errorDetail } from "./api.js";
import { caseLabel, NEEDS_TEXT, stepExtras } from "./casesteps.js";
import { actorName, has, serverText, t } from "./i18n.js";

const RELOAD_DEBOUNCE_MS = 250;
const RELOAD_EVERY_MS = 30_000; // overdue flags change with time alone; the events cover the rest
const MUTE_KEY = "liandong.mute";

export class AlarmPanel {
  /** `list` is the <ul>; `config()` the console config (departments); `onOpen(ids)` opens cameras;
   * `onChange(incidents)` hears every reload (map marks, counters). */
  constructor(list, filter, muteButton, { config, onOpen, onChange, onPlayback = null }) {
    this.list = list;
    this.filter = filter;
    this.muteButton = muteButton;
    this.config = config;
    this.onOpen = onOpen;
    this.onPlayback = onPlayback; // (incident) -> its cameras' recordings, from the alarm's moment
    this.onChange = onChange;
    this.incidents = [];
    this.lastText = null;
    this.selected = null;
    this.drafts = new Map(); // incident id -> note text being typed (kept across reloads)
    this.errors = new Map(); // incident id -> last refusal
    this.fresh = new Set(); // incidents that arrived while this page was open, until selected
    this.reloadTimer = null;
    this.tick = null;
    this.every = null;
    this.audio = null;
    this.beeps = 0;
    this.muted = localStorage.getItem(MUTE_KEY) === "1";
    this.gen = 0;
    filter.addEventListener("change", () => this.reload());
    muteButton.addEventListener("click", () => this.setMuted(!this.muted));
    this.showMute();
    // Browsers start audio only after a user gesture: any click arms it for the next alarm.
    document.addEventListener("pointerdown", () => this.armAudio(), { capture: true });
    document.addEventListener("keydown", () => this.armAudio(), { capture: true });
  }

  start() {
    this.stop();
    this.tick = setInterval(() => this.updateClocks(), 1000);
    this.every = setInterval(() => this.reload(), RELOAD_EVERY_MS);
    return this.reload();
  }

  stop() {
    clearInterval(this.tick);
    clearInterval(this.every);
    clearTimeout(this.reloadTimer);
    this.gen += 1;
    this.incidents = [];
    this.lastText = null;
    this.selected = null;
    this.drafts.clear();
    this.errors.clear();
    this.fresh.clear();
    this.list.replaceChildren();
  }

  /** An incident event arrived: reload soon (several events in a burst make one request). */
  changed() {
    clearTimeout(this.reloadTimer);
    this.reloadTimer = setTimeout(() => this.reload(), RELOAD_DEBOUNCE_MS);
  }

  /** A new alarm: beep, and mark it until the operator looks at it. */
  alarm(incidentId) {
    this.fresh.add(incidentId);
    this.beep();
    this.changed();
  }

  async reload() {
    const gen = this.gen;
    const q = new URLSearchParams({ limit: "200" });
    if (this.filter.value) q.set("state", this.filter.value);
    const r = await api(`/api/incidents?${q}`);
    if (gen !== this.gen || !r.ok) return;
    const text = await r.text();
    if (gen !== this.gen) return;
    // Unchanged: leave the DOM alone (an open department menu or a half-typed note stays as it is).
    if (text === this.lastText) return;
    this.lastText = text;
    this.incidents = JSON.parse(text);
    this.render();
    if (this.onChange) this.onChange(this.incidents);
  }

  render() {
    const keepFocus = document.activeElement && this.list.contains(document.activeElement) ? document.activeElement : null;
    const focusKey = keepFocus ? keepFocus.dataset.focusKey : null;
    const items = this.incidents.map((inc) => this.item(inc));
    this.list.replaceChildren(...items);
    if (!items.length) {
      const li = document.createElement("li");
      li.className = "inc-empty";
      li.textContent = t("inc_none");
      this.list.append(li);
    }
    if (focusKey) {
      const el = this.list.querySelector(`[data-focus-key="${CSS.escape(focusKey)}"]`);
      if (el) {
        el.focus();
        if (el.tagName === "TEXTAREA") el.selectionStart = el.selectionEnd = el.value.length;
      }
    }
    this.updateClocks();
  }

  item(inc) {
    const li = document.createElement("li");
    li.className = "inc";
    li.dataset.incident = inc.id;
    li.dataset.state = inc.state;
    li.classList.toggle("overdue", inc.overdue);
    li.classList.toggle("fresh", this.fresh.has(inc.id));
    const open = this.selected === inc.id;
    li.classList.toggle("open", open);

    const head = document.createElement("div");
    head.className = "inc-head";
    head.tabIndex = 0;
    head.dataset.focusKey = `${inc.id}:head`;
    const state = span("inc-state", caseLabel(`state_${inc.state}`) ?? t(`state_${inc.state}`));
    state.dataset.state = inc.state;
    const title = span("inc-title", `${has(`type_${inc.type}`) ? t(`type_${inc.type}`) : inc.type} · ${inc.area || t("no_area")}`);
    const when = span("inc-time", clock(new Date(inc.created_at)));
    head.append(state, title, when);
    const sub = document.createElement("div");
    sub.className = "inc-sub";
    const parts = [inc.id];
    if (inc.vehicle_id) parts.push(inc.vehicle_id);
    if (inc.dispatched_to) parts.push(`→ ${deptName(this.config(), inc.dispatched_to)}`);
    sub.append(span("inc-id", parts.join(" · ")), this.deadline(inc));
    head.addEventListener("click", () => this.select(inc.id));
    head.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter" || ev.key === " ") {
        ev.preventDefault();
        this.select(inc.id);
      }
    });
    li.append(head, sub);
    if (inc.text) li.append(Object.assign(document.createElement("p"), { className: "inc-text", textContent: inc.text }));
    if (open) li.append(this.details(inc));
    return li;
  }

  // The deadline that matters now: on site while not there yet, then resolution.
  deadline(inc) {
    const el = span("inc-deadline", "");
    const pending = ["dispatched", "acknowledged"].includes(inc.state)
      ? ["onsite", inc.onsite_deadline]
      : inc.state === "on_site"
        ? ["resolve", inc.resolve_deadline]
        : null;
    if (pending && pending[1]) {
      el.dataset.kind = pending[0];
      el.dataset.due = String(Date.parse(pending[1]));
    }
    return el;
  }

  updateClocks() {
    const now = Date.now();
    for (const el of this.list.querySelectorAll(".inc-deadline[data-due]")) {
      const left = Number(el.dataset.due) - now;
      const label = t(`deadline_${el.dataset.kind}`);
      el.textContent = left >= 0 ? `${label} ${duration(left)}` : `${label} ${t("overdue")} ${duration(-left)}`;
      el.classList.toggle("late", left < 0);
      el.classList.toggle("soon", left >= 0 && left < 15 * 60_000);
    }
  }

  select(id) {
    this.selected = this.selected === id ? null : id;
    this.fresh.delete(id);
    this.render();
  }

  details(inc) {
    const box = document.createElement("div");
    box.className = "inc-details";
    const actions = document.createElement("div");
    actions.className = "inc-actions";
    if (inc.cameras.length) {
      const b = button(`${t("open_cameras")} (${inc.cameras.length})`, "open-cameras");
      b.addEventListener("click", () => this.onOpen(inc.cameras));
      actions.append(b);
      if (this.onPlayback) {
        const rec = button(t("inc_recordings"), "inc-recordings");
        rec.addEventListener("click", () => this.onPlayback(inc));
        actions.append(rec);
      }
    }
    const may = new Set(inc.actions || []);
    let dept = null;
    if (may.has("dispatch")) {
      dept = document.createElement("select");
      dept.className = "inc-dept";
      dept.dataset.focusKey = `${inc.id}:dept`;
      for (const d of this.config().departments || []) dept.add(new Option(d.name || d.id, d.id));
      if (inc.dispatched_to) dept.value = inc.dispatched_to;
    }
    const text = document.createElement("textarea");
    text.className = "inc-note";
    text.rows = 2;
    text.maxLength = 4000;
    text.placeholder = t("note_placeholder");
    text.dataset.focusKey = `${inc.id}:text`;
    text.value = this.drafts.get(inc.id) || "";
    text.addEventListener("input", () => this.drafts.set(inc.id, text.value));
    for (const action of inc.actions || []) {
      const b = button(caseLabel(`act_${action}`) ?? t(`act_${action}`), `act-${action}`);
      b.dataset.action = action;
      b.dataset.focusKey = `${inc.id}:${action}`;
      b.addEventListener("click", () => this.act(inc, action, { text, dept, button: b }));
      if (action === "dispatch") actions.append(dept); // the department, then the button
      actions.append(b);
    }
    box.append(actions);
    if (may.has("note") || may.has("verify")) box.append(text);
    const err = document.createElement("p");
    err.className = "inc-error";
    err.setAttribute("role", "alert");
    err.textContent = this.errors.get(inc.id) || "";
    box.append(err);
    box.append(this.history(inc));
    return box;
  }

  history(inc) {
    const ol = document.createElement("ol");
    ol.className = "inc-history";
    for (const h of [...(inc.history || [])].reverse()) {
      const li = document.createElement("li");
      const what = h.action === "opened" ? t("act_opened") : (caseLabel(`act_${h.action}`) ?? t(`act_${h.action}`));
      const extra = h.department ? ` → ${deptName(this.config(), h.department)}` : h.added ? ` +${h.added.length}` : "";
      li.append(span("h-time", clock(new Date(h.at))), span("h-by", actorName(h.by)), span("h-what", what + extra));
      if (h.text) li.append(span("h-text", h.text));
      ol.append(li);
    }
    return ol;
  }

  async act(inc, action, { text, dept, button: b }) {
    const body = stepExtras(action);
    const note = text.value.trim();
    if (NEEDS_TEXT.has(action) && !note) {
      this.errors.set(inc.id, action === "verify" ? caseLabel("verify_needs_text") : t("note_needs_text"));
      this.render();
      return;
    }
    if (note && NEEDS_TEXT.has(action)) body.text = note;
    if (action === "dispatch") body.department = dept ? dept.value : "";
    b.disabled = true;
    const r = await api(`/api/incidents/${encodeURIComponent(inc.id)}/${action}`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify(body),
    });
    b.disabled = false;
    if (!r.ok) {
      this.errors.set(inc.id, `${t("act_failed")}: ${serverText(await errorDetail(r))}`);
      this.render();
      return;
    }
    this.errors.delete(inc.id);
    if (NEEDS_TEXT.has(action)) this.drafts.delete(inc.id);
    const updated = await r.json();
    const i = this.incidents.findIndex((x) => x.id === inc.id);
    if (i >= 0) this.incidents[i] = updated;
    this.render();
    this.changed(); // the list's filter may drop it (closed), and others may have acted too
  }

  // -- sound ---------------------------------------------------------------------------------
  armAudio() {
    if (!this.audio) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return;
      this.audio = new Ctx();
    }
    if (this.audio.state === "suspended") this.audio.resume();
  }

  /** Three short two-tone beeps (WebAudio; no sound file). Counted in data-beeps for tests and logs. */
  beep() {
    if (this.muted) return;
    this.armAudio();
    const ctx = this.audio;
    if (!ctx) return;
    const t0 = ctx.currentTime + 0.02;
    for (let i = 0; i < 3; i++) {
      for (const [j, freq] of [880, 660].entries()) {
        const osc = ctx.createOscillator();
        const gain = ctx.createGain();
        osc.type = "square";
        osc.frequency.value = freq;
        const start = t0 + i * 0.5 + j * 0.16;
        gain.gain.setValueAtTime(0.0001, start);
        gain.gain.exponentialRampToValueAtTime(0.15, start + 0.01);
        gain.gain.exponentialRampToValueAtTime(0.0001, start + 0.14);
        osc.connect(gain).connect(ctx.destination);
        osc.start(start);
        osc.stop(start + 0.15);
      }
    }
    this.beeps += 1;
    this.list.dataset.beeps = String(this.beeps);
    this.list.dataset.audio = ctx.state;
  }

  setMuted(m) {
    this.muted = m;
    localStorage.setItem(MUTE_KEY, m ? "1" : "0");
    this.showMute();
  }

  showMute() {
    this.muteButton.setAttribute("aria-pressed", String(this.muted));
    this.muteButton.title = this.muted ? t("sound_off") : t("sound_on");
  }

  relabel() {
    this.showMute();
    this.render();
  }

  get openCount() {
    return this.incidents.filter((i) => i.state !== "closed").length;
  }
}

function span(cls, text) {
  const s = document.createElement("span");
  s.className = cls;
  s.textContent = text;
  return s;
}

function button(text, cls) {
  const b = document.createElement("button");
  b.type = "button";
  b.className = cls;
  b.textContent = text;
  return b;
}

function deptName(config, id) {
  const d = (config.departments || []).find((x) => x.id === id);
  return d ? d.name || id : id;
}

function clock(d) {
  const p = (n) => String(n).padStart(2, "0");
  const today = new Date().toDateString() === d.toDateString();
  const hm = `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
  return today ? hm : `${d.getMonth() + 1}-${d.getDate()} ${hm}`;
}

function duration(ms) {
  const s = Math.floor(ms / 1000);
  const p = (n) => String(n).padStart(2, "0");
  const h = Math.floor(s / 3600);
  const rest = `${p(Math.floor((s % 3600) / 60))}:${p(s % 60)}`;
  return h >= 24 ? `${t("unit_days", Math.floor(h / 24))}${p(h % 24)}:${rest}` : `${p(h)}:${rest}`;
}
