// The dashboard's case statistics: a calendar month (or a whole year) by sub-district, station or
// department, as the gateway computes them (GET /api/incidents/stats): an ECharts bar chart of
// received, closed and overdue (ever) per unit, the ranked table beside it, and the month's export
// (XLSX or CSV) as a download. ECharts (npm) is served from /vendor/; it draws on a canvas and its
// tooltip is drawn there too (renderMode richText), so the page's strict CSP needs no exception.
import { api } from "./api.js";
import { currentLang } from "./i18n.js";

let echarts = null; // loaded with the first chart, so the console's first paint does not wait for it

const LABELS = {
  zh: {
    title: "案件统计", month: "月份", year: "全年", by: "统计口径", by_subdistrict: "街镇", by_station: "居村委工作站",
    by_department: "职能部门", received: "受理", dispatched: "派遣", onsite_pct: "按时到场率", resolved_pct: "按时办结率",
    closed: "结案", overdue: "超期（累计）", rank: "排名", unit: "单位", total: "合计", none: "本期暂无案件",
    export_xlsx: "导出 Excel", export_csv: "导出 CSV", failed: "统计加载失败",
  },
  en: {
    title: "Case statistics", month: "Month", year: "Whole year", by: "By", by_subdistrict: "Sub-district",
    by_station: "Station", by_department: "Department", received: "Received", dispatched: "Dispatched",
    onsite_pct: "On site in time", resolved_pct: "Resolved in time", closed: "Closed", overdue: "Overdue (ever)",
    rank: "Rank", unit: "Unit", total: "Total", none: "No cases in this period", export_xlsx: "Export Excel",
    export_csv: "Export CSV", failed: "Could not load the statistics",
  },
};
const L = (key) => LABELS[currentLang() === "en" ? "en" : "zh"][key];
const BY = ["subdistrict", "station", "department"];
const CHART_UNITS = 20; // the best-ranked units in the chart; the table lists them all
const pct = (v) => (v == null ? "—" : `${v}%`);

/** This month in the browser's calendar, YYYY-MM. */
function thisMonth() {
  const d = new Date();
  return `${d.getFullYear()}-${String(d.getMonth() + 1).padStart(2, "0")}`;
}

export class CaseStats {
  constructor() {
    this.el = el("section", "case-stats");
    this.el.id = "case-stats";
    this.month = thisMonth();
    this.year = false;
    this.by = "subdistrict";
    this.data = null;
    this.error = "";
    this.chart = null;
    this.gen = 0;
    this.head = el("div", "case-stats-head");
    this.chartBox = el("div", "case-chart");
    this.chartBox.id = "case-chart";
    this.table = el("div", "case-table");
    this.el.append(this.head, this.chartBox, this.table);
  }

  /** The period asked for: YYYY-MM, or YYYY for the year view. */
  get period() {
    return this.year ? this.month.slice(0, 4) : this.month;
  }

  async load() {
    const gen = ++this.gen;
    const q = new URLSearchParams({ month: this.period, by: this.by });
    const r = await api(`/api/incidents/stats?${q}`);
    if (gen !== this.gen) return;
    this.error = r.ok ? "" : L("failed");
    this.data = r.ok ? await r.json() : null;
    if (this.data && this.data.units.length && !echarts) echarts = await import("/vendor/echarts.mjs");
    if (gen !== this.gen) return;
    this.render();
  }

  reset() {
    this.gen += 1;
    this.data = null;
    if (this.chart) this.chart.dispose();
    this.chart = null;
  }

  render() {
    this.renderHead();
    this.renderChart();
    this.renderTable();
  }

  renderHead() {
    const month = Object.assign(document.createElement("input"), { type: "month", id: "case-month", value: this.month });
    month.addEventListener("change", () => {
      if (/^\d{4}-\d{2}$/.test(month.value)) {
        this.month = month.value;
        this.load();
      }
    });
    const year = Object.assign(document.createElement("input"), { type: "checkbox", id: "case-year", checked: this.year });
    year.addEventListener("change", () => {
      this.year = year.checked;
      this.load();
    });
    const by = document.createElement("select");
    by.id = "case-by";
    for (const b of BY) by.add(new Option(L(`by_${b}`), b));
    by.value = this.by;
    by.addEventListener("change", () => {
      this.by = by.value;
      this.load();
    });
    const q = new URLSearchParams({ month: this.period, by: this.by });
    const xlsx = link("case-export-xlsx", `/api/incidents/stats/export?${q}&format=xlsx`, L("export_xlsx"));
    const csv = link("case-export-csv", `/api/incidents/stats/export?${q}&format=csv`, L("export_csv"));
    const yearLabel = el("label", "case-year");
    yearLabel.append(year, document.createTextNode(L("year")));
    const byLabel = el("label", "");
    byLabel.append(document.createTextNode(`${L("by")} `), by);
    const monthLabel = el("label", "");
    monthLabel.append(document.createTextNode(`${L("month")} `), month);
    this.head.replaceChildren(el("h3", "", L("title")), monthLabel, yearLabel, byLabel, xlsx, csv);
  }

  renderChart() {
    const units = this.data ? this.data.units.slice(0, CHART_UNITS) : [];
    this.chartBox.hidden = !units.length;
    if (!units.length) return;
    if (!this.chart) this.chart = echarts.init(this.chartBox, null, { renderer: "canvas" });
    const series = (key, color) => ({
      name: L(key),
      type: "bar",
      itemStyle: { color },
      data: units.map((u) => u[key]),
    });
    this.chart.setOption(
      {
        animation: false,
        tooltip: { trigger: "axis", renderMode: "richText" },
        legend: { top: 0 },
        grid: { left: 48, right: 16, top: 32, bottom: 64 },
        xAxis: { type: "category", data: units.map((u) => u.name || u.unit), axisLabel: { rotate: 30, interval: 0 } },
        yAxis: { type: "value", minInterval: 1 },
        series: [series("received", "#4c8bf5"), series("closed", "#3aa757"), series("overdue", "#d93025")],
      },
      true,
    );
    this.chartBox.dataset.units = String(units.length);
    this.chart.resize();
  }

  renderTable() {
    if (!this.data) {
      this.table.replaceChildren(el("p", "chart-empty", this.error));
      return;
    }
    if (!this.data.units.length) {
      this.table.replaceChildren(el("p", "chart-empty", L("none")));
      return;
    }
    const cols = [
      ["rank", (u) => u.rank],
      ["unit", (u) => u.name || u.unit],
      ["received", (u) => u.received],
      ["dispatched", (u) => u.dispatched],
      ["onsite_pct", (u) => pct(u.onsite_in_time_pct)],
      ["resolved_pct", (u) => pct(u.resolved_in_time_pct)],
      ["closed", (u) => u.closed],
      ["overdue", (u) => u.overdue],
    ];
    const table = el("table", "case-rank");
    const head = table.createTHead().insertRow();
    for (const [key] of cols) head.append(el("th", "", L(key)));
    const body = table.createTBody();
    for (const u of this.data.units) {
      const tr = body.insertRow();
      tr.dataset.unit = u.unit;
      for (const [key, value] of cols) {
        const td = tr.insertCell();
        td.dataset.col = key;
        td.textContent = String(value(u));
      }
    }
    this.table.replaceChildren(table);
  }

  /** The chart follows its box when the dashboard is shown again. */
  resize() {
    if (this.chart) this.chart.resize();
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function link(id, href, text) {
  const a = el("a", "case-export", text);
  a.id = id;
  a.href = href;
  a.setAttribute("download", "");
  return a;
}
