// The vehicle panel on the map: a bus's line, plate, driver, company and cameras; a hazardous-goods
// truck's cargo, escort, driver and their phone, company and where it is registered. It shows only
// what GET /api/vehicles/{id} answers, which passes the same policy as the cameras; a truck from
// elsewhere is answered only while it is inside the district, so the panel empties when it leaves.
import { api } from "./api.js";
import { t } from "./i18n.js";

const FIELDS = {
  bus: ["plate", "line", "driver", "company"],
  truck: ["plate", "cargo", "escort", "driver", "driver_phone", "company", "home_district"],
};

export class VehiclePanel {
  /** `el` holds the panel; `onOpen(ids, names)` opens cameras on the wall. */
  constructor(el, { onOpen }) {
    this.el = el;
    this.onOpen = onOpen;
    this.id = null;
    this.busy = false;
  }

  /** Show vehicle `id` (its details as the server answers them). */
  async open(id) {
    this.id = id;
    this.el.hidden = false;
    this.el.dataset.vehicle = id;
    await this.refresh();
  }

  close() {
    this.id = null;
    this.el.hidden = true;
    this.el.replaceChildren();
    delete this.el.dataset.vehicle;
    delete this.el.dataset.state;
  }

  /** Ask again (the map calls this with every vehicle poll while the panel is open). */
  async refresh() {
    const id = this.id;
    if (!id || this.busy) return;
    this.busy = true;
    try {
      const r = await api(`/api/vehicles/${encodeURIComponent(id)}`);
      if (id !== this.id) return; // another vehicle was chosen meanwhile
      if (r.ok) this.render(await r.json());
      else this.renderHidden();
    } finally {
      this.busy = false;
    }
  }

  header(title) {
    const head = document.createElement("div");
    head.className = "vp-head";
    const h = document.createElement("strong");
    h.textContent = title;
    const x = document.createElement("button");
    x.type = "button";
    x.className = "vp-close";
    x.textContent = "×";
    x.title = t("close");
    x.addEventListener("click", () => this.close());
    head.append(h, x);
    return head;
  }

  render(v) {
    this.el.dataset.state = "shown";
    const rows = document.createElement("dl");
    for (const f of FIELDS[v.kind] || ["plate"]) {
      if (v[f] == null || v[f] === "") continue;
      const dt = document.createElement("dt");
      dt.textContent = t(`vehicle_${f}`);
      const dd = document.createElement("dd");
      dd.textContent = v[f];
      dd.dataset.field = f;
      rows.append(dt, dd);
    }
    const cams = document.createElement("div");
    cams.className = "vp-cams";
    if (v.cameras.length) {
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = t("vehicle_open_cameras", v.cameras.length);
      open.addEventListener("click", () => this.onOpen(v.cameras.map((c) => c.id), v.cameras.map((c) => c.name)));
      cams.append(open);
    } else {
      cams.textContent = t("vehicle_no_cameras");
    }
    this.el.replaceChildren(this.header(`${t(`kind_${v.kind}`)} ${v.plate}`), rows, cams);
  }

  renderHidden() {
    this.el.dataset.state = "hidden";
    const p = document.createElement("p");
    p.textContent = t("vehicle_hidden");
    this.el.replaceChildren(this.header(t("vehicle_details")), p);
  }
}
