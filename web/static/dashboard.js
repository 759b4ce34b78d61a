// The supervisor's dashboard: incidents by sub-district and department (handled, open, overdue),
// handled %, and cameras offline by sub-district, as plain bars. Everything counts only what this
// user may see (the gateway filters).
import { api } from "./api.js";
import { CaseStats } from "./casestats.js";
import { t } from "./i18n.js";

const REFRESH_MS = 30_000;
const PERIODS = ["today", "7d", "30d", "all"];
const PERIOD_KEY = "liandong.dashboard.period";

/** The start of a period as an ISO time (local midnight for days), or null for all time. */
function periodStart(period) {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  if (period === "today") return d.toISOString();
  if (period === "7d") return new Date(d.getTime() - 6 * 86_400_000).toISOString();
  if (period === "30d") return new Date(d.getTime() - 29 * 86_400_000).toISOString();
  return null;
}

export class Dashboard {
  /** `el` is the dashboard section; `config()` gives department names. */
  constructor(el, { config }) {
    this.el = el;
    this.config = config;
    this.data = null;
    this.timer = null;
    this.active = false;
    this.gen = 0;
    this.cases = new CaseStats(); // the month's case statistics (ECharts), below the live counts
    const saved = localStorage.getItem(PERIOD_KEY);
    this.period = PERIODS.includes(saved) ? saved : "all";
  }

  setPeriod(p) {
    this.period = p;
    localStorage.setItem(PERIOD_KEY, p);
    this.load();
  }

  async show() {
    this.active = true;
    clearInterval(this.timer);
    this.timer = setInterval(() => {
      if (!document.hidden) this.load();
    }, REFRESH_MS);
    await this.load();
  }

  hide() {
    this.active = false;
    clearInterval(this.timer);
  }

  reset() {
    this.hide();
    this.gen += 1;
    this.data = null;
    this.cases.reset();
    this.el.replaceChildren();
  }

  /** Something changed (an incident event): refresh if shown. */
  changed() {
    if (this.active) this.load();
  }

  async load() {
    const gen = this.gen;
    const since = periodStart(this.period);
    const [r] = await Promise.all([
      api(`/api/console/dashboard${since ? `?since=${encodeURIComponent(since)}` : ""}`),
      this.cases.load(),
    ]);
    if (gen !== this.gen || !r.ok) return;
    this.data = await r.json();
    this.render();
    this.cases.resize();
  }

  relabel() {
    if (this.data) this.render();
    if (this.cases.data) this.cases.render();
  }

  render() {
    const { incidents: inc, cameras: cams } = this.data;
    const kpis = el("div", "kpis");
    kpis.append(
      kpi("total", t("dash_total"), inc.total),
      kpi("open", t("dash_open"), inc.open),
      kpi("handled_pct", t("dash_handled_pct"), `${inc.handled_pct}%`),
      kpi("overdue", t("dash_overdue"), inc.overdue, inc.overdue > 0 ? "bad" : ""),
      kpi("cameras_offline", t("dash_cameras_offline"), `${cams.offline} / ${cams.total}`, cams.offline > 0 ? "warn" : ""),
    );
    const names = Object.fromEntries((this.config().departments || []).map((d) => [d.id, d.name || d.id]));
    const panels = el("div", "dash-panels");
    panels.append(
      incidentChart("by_area", t("dash_by_area"), inc.by_area, (k) => (k === "-" ? t("no_area") : k)),
      incidentChart("by_department", t("dash_by_department"), inc.by_department, (k) =>
        k === "-" ? t("not_dispatched") : names[k] || k,
      ),
      offlineChart(t("dash_offline_by_area"), cams.by_area),
    );
    const legend = el("div", "dash-legend");
    const period = document.createElement("select");
    period.id = "dash-period";
    for (const p of PERIODS) period.add(new Option(t(`period_${p}`), p));
    period.value = this.period;
    period.addEventListener("change", () => this.setPeriod(period.value));
    legend.append(
      period,
      swatch("handled", t("dash_handled")),
      swatch("open", t("dash_open")),
      swatch("overdue", t("dash_overdue")),
    );
    this.el.replaceChildren(kpis, legend, panels, this.cases.el);
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function kpi(key, label, value, tone = "") {
  const box = el("div", `kpi ${tone}`);
  box.dataset.kpi = key;
  box.append(el("span", "kpi-value", String(value)), el("span", "kpi-label", label));
  return box;
}

function swatch(cls, label) {
  const s = el("span", "swatch");
  s.append(el("i", `seg ${cls}`), document.createTextNode(label));
  return s;
}

// One row per group: a bar as long as its total (scaled to the largest), split into handled and
// still open; overdue (a part of open) marked on top. Numbers beside it, so no hover is needed.
function incidentChart(key, title, groups, label) {
  const box = el("section", "chart");
  box.dataset.chart = key;
  box.append(el("h3", "", title));
  const rows = Object.entries(groups).sort((a, b) => b[1].total - a[1].total || a[0].localeCompare(b[0]));
  if (!rows.length) box.append(el("p", "chart-empty", t("dash_none")));
  const max = Math.max(1, ...rows.map(([, g]) => g.total));
  for (const [name, g] of rows) {
    const row = el("div", "bar-row");
    row.dataset.key = name;
    const bar = el("div", "bar-box");
    const track = el("div", "bar-track");
    track.style.width = `${(100 * g.total) / max}%`;
    const handled = el("div", "seg handled");
    handled.style.flexGrow = String(g.handled);
    const open = el("div", "seg open");
    open.style.flexGrow = String(g.total - g.handled);
    track.append(handled, open);
    if (g.overdue) {
      const over = el("div", "overdue-mark");
      over.style.width = `${(100 * g.overdue) / g.total}%`;
      track.append(over);
    }
    bar.append(track);
    const nums = el("span", "bar-nums");
    nums.append(
      num("total", g.total),
      el("span", "dim", " · "),
      num("handled_pct", `${g.handled_pct}%`),
      el("span", "dim", ` ${t("dash_handled_short")}`),
    );
    if (g.overdue) nums.append(el("span", "dim", " · "), num("overdue", g.overdue, "bad"), el("span", "bad", ` ${t("dash_overdue_short")}`));
    row.append(el("span", "bar-label", label(name)), bar, nums);
    row.title = `${label(name)}: ${t("dash_total")} ${g.total}, ${t("dash_open")} ${g.open}, ${t("dash_handled")} ${g.handled}, ${t("dash_overdue")} ${g.overdue}`;
    box.append(row);
  }
  return box;
}

function offlineChart(title, areas) {
  const box = el("section", "chart");
  box.dataset.chart = "cameras_offline";
  box.append(el("h3", "", title));
  const rows = Object.entries(areas).sort((a, b) => b[1].offline - a[1].offline || a[0].localeCompare(b[0]));
  if (!rows.length) box.append(el("p", "chart-empty", t("dash_none")));
  for (const [name, a] of rows) {
    const row = el("div", "bar-row");
    row.dataset.key = name;
    const bar = el("div", "bar-box");
    const track = el("div", "bar-track full");
    const off = el("div", "seg offline");
    off.style.flexGrow = String(a.offline);
    const on = el("div", "seg online");
    on.style.flexGrow = String(a.total - a.offline);
    track.append(off, on);
    bar.append(track);
    const nums = el("span", "bar-nums");
    nums.append(num("offline", a.offline, a.offline ? "bad" : ""), el("span", "dim", " / "), num("total", a.total));
    row.append(el("span", "bar-label", name === "-" ? t("no_area") : name), bar, nums);
    box.append(row);
  }
  return box;
}

function num(key, value, cls = "") {
  const s = el("span", `n ${cls}`, String(value));
  s.dataset.n = key;
  return s;
}
