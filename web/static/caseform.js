// The call-taker's case-entry form: a hotline or patrol case with its category, place (sub-district,
// neighbourhood, address, coordinates when known), reporter and description, optionally dispatched
// at once to a unit below. The gateway picks the sub-district and station from the address, opens
// the cameras around a place and decides who may do what; this form only asks and shows its answer.
import { api, errorDetail } from "./api.js";
import { currentLang, serverText } from "./i18n.js";

const LABELS = {
  zh: {
    new_case: "新建案件", case_title: "新建案件（热线 / 巡查）", origin: "来源", origin_hotline: "12345 热线",
    origin_patrol: "巡查发现", category: "类别", subdistrict: "街镇", neighbourhood: "居村委",
    address: "地址", lat: "纬度", lon: "经度", reporter_name: "反映人", reporter_phone: "联系电话",
    text: "问题描述", dispatch_to: "派遣至", dispatch_none: "暂不派遣", submit: "提交", cancel: "取消",
    created: (id) => `已受理：${id}`, created_dispatched: (id, unit) => `已受理：${id}，已派遣至 ${unit}`,
    failed: "提交失败", dispatch_failed: "案件已受理，但派遣失败",
  },
  en: {
    new_case: "New case", case_title: "New case (hotline / patrol)", origin: "Origin", origin_hotline: "Hotline",
    origin_patrol: "Patrol", category: "Category", subdistrict: "Sub-district", neighbourhood: "Neighbourhood",
    address: "Address", lat: "Latitude", lon: "Longitude", reporter_name: "Reporter", reporter_phone: "Phone",
    text: "Description", dispatch_to: "Dispatch to", dispatch_none: "Not yet", submit: "Submit", cancel: "Cancel",
    created: (id) => `Received: ${id}`, created_dispatched: (id, unit) => `Received: ${id}, dispatched to ${unit}`,
    failed: "Could not submit", dispatch_failed: "The case was received, but the dispatch failed",
  },
};

function L(key, ...args) {
  const v = LABELS[currentLang() === "en" ? "en" : "zh"][key];
  return typeof v === "function" ? v(...args) : v;
}

/** Levels whose operators enter cases (the gateway's rule: members of a command centre). */
const COMMAND_LEVELS = new Set(["district", "subdistrict"]);

/** Whether `me` may open cases (the gateway decides again; this only hides a button that would fail). */
export function mayOpenCases(me, config) {
  if (!me) return false;
  if (me.role === "admin") return true;
  if (me.role !== "operator") return false;
  const levels = new Map((config.departments || []).map((d) => [d.id, d.level]));
  return me.departments.some((d) => COMMAND_LEVELS.has(levels.get(d)));
}

export class CaseForm {
  /** `button` toggles the form; `box` holds it; `config()` gives the units; `onCreated(case)` hears a new case. */
  constructor(button, box, { config, onCreated }) {
    this.button = button;
    this.box = box;
    this.config = config;
    this.onCreated = onCreated;
    this.categories = [];
    button.addEventListener("click", () => (this.box.hidden ? this.open() : this.close()));
  }

  /** Show the button (or not) for this user. */
  enable(on) {
    this.button.hidden = !on;
    this.button.textContent = L("new_case");
    if (!on) this.close();
  }

  async open() {
    const r = await api("/api/incident-categories");
    if (r.ok) this.categories = (await r.json()).categories;
    this.render();
    this.box.hidden = false;
    this.button.setAttribute("aria-pressed", "true");
    this.box.querySelector("[name=text]").focus();
  }

  close() {
    this.box.hidden = true;
    this.box.replaceChildren();
    this.button.setAttribute("aria-pressed", "false");
  }

  relabel() {
    this.button.textContent = L("new_case");
    if (!this.box.hidden) this.render();
  }

  render() {
    const form = document.createElement("form");
    form.id = "case-form";
    form.className = "case-form";
    form.noValidate = true; // the gateway validates; its 422 names the field
    form.append(el("h3", "", L("case_title")));
    const origin = select("origin", [["hotline", L("origin_hotline")], ["patrol", L("origin_patrol")]]);
    const cats = document.createElement("datalist");
    cats.id = "case-categories";
    for (const c of this.categories) cats.append(new Option(c.label || c.name, c.name));
    const category = input("category", "text", { maxLength: 32, required: true });
    category.setAttribute("list", cats.id);
    const units = (this.config().departments || []).filter((d) => d.level !== "district");
    const dispatch = select("dispatch_to", [["", L("dispatch_none")], ...units.map((d) => [d.id, d.name || d.id])]);
    form.append(
      field("origin", origin),
      field("category", category),
      cats,
      field("subdistrict", input("subdistrict", "text", { maxLength: 64 })),
      field("neighbourhood", input("neighbourhood", "text", { maxLength: 128 })),
      field("address", input("address", "text", { maxLength: 300 })),
      row(field("lat", input("lat", "number", { step: "any" })), field("lon", input("lon", "number", { step: "any" }))),
      row(
        field("reporter_name", input("reporter_name", "text", { maxLength: 64 })),
        field("reporter_phone", input("reporter_phone", "tel", { maxLength: 20 })),
      ),
      field("text", Object.assign(document.createElement("textarea"), { name: "text", rows: 3, maxLength: 4000 })),
      field("dispatch_to", dispatch),
    );
    const err = el("p", "inc-error case-error");
    err.setAttribute("role", "alert");
    const done = el("p", "case-done");
    done.setAttribute("role", "status");
    const submit = el("button", "case-submit", L("submit"));
    submit.type = "submit";
    const cancel = el("button", "case-cancel", L("cancel"));
    cancel.type = "button";
    cancel.addEventListener("click", () => this.close());
    const actions = el("div", "inc-actions");
    actions.append(submit, cancel);
    form.append(actions, err, done);
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit(form, { err, done, submit });
    });
    this.box.replaceChildren(form);
  }

  async submit(form, { err, done, submit }) {
    const f = new FormData(form);
    const body = { origin: f.get("origin"), category: String(f.get("category")).trim(), text: f.get("text") };
    for (const k of ["subdistrict", "neighbourhood", "address", "reporter_name", "reporter_phone"]) {
      const v = String(f.get(k) || "").trim();
      if (v) body[k] = v;
    }
    for (const k of ["lat", "lon"]) {
      const v = String(f.get(k) || "").trim();
      if (v) body[k] = Number(v);
    }
    err.textContent = "";
    done.textContent = "";
    submit.disabled = true;
    try {
      const r = await api("/api/incidents", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
      if (!r.ok) {
        err.textContent = `${L("failed")}: ${serverText(await errorDetail(r))}`;
        return;
      }
      const created = await r.json();
      const unit = f.get("dispatch_to");
      if (unit) {
        const d = await api(`/api/incidents/${encodeURIComponent(created.id)}/dispatch`, {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ department: unit }),
        });
        if (!d.ok) {
          err.textContent = `${L("dispatch_failed")}: ${serverText(await errorDetail(d))}`;
          done.textContent = L("created", created.id);
          done.dataset.incident = created.id;
          if (this.onCreated) this.onCreated(created);
          return;
        }
      }
      const name = (this.config().departments || []).find((x) => x.id === unit)?.name || unit;
      form.reset();
      done.textContent = unit ? L("created_dispatched", created.id, name) : L("created", created.id);
      done.dataset.incident = created.id;
      if (this.onCreated) this.onCreated(created);
    } finally {
      submit.disabled = false;
    }
  }
}

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text != null) e.textContent = text;
  return e;
}

function input(name, type, props = {}) {
  return Object.assign(document.createElement("input"), { name, type, ...props });
}

function select(name, options) {
  const s = document.createElement("select");
  s.name = name;
  for (const [value, label] of options) s.add(new Option(label, value));
  return s;
}

function field(key, control) {
  const label = el("label", "case-field");
  label.dataset.field = key;
  label.append(el("span", "", L(key)), control);
  return label;
}

function row(...fields) {
  const r = el("div", "case-row");
  r.append(...fields);
  return r;
}
