// The login both consoles share: the sign-in form (drawn here, so the two pages carry it once), the
// header's who and logout, and the check for a login the browser already holds. Each page keeps
// what it does around a login: what it draws on entering, and what it ends on leaving.
import { api } from "./api.js";

const $ = (id) => document.getElementById(id);

// Texts come from the page's i18n module (its applyTexts fills every data-i18n element).
const FORM = `<form id="login-form" autocomplete="on">
  <h1 data-i18n="login_title"></h1>
  <label><span data-i18n="username"></span><input id="username" name="username" required autocomplete="username"></label>
  <label><span data-i18n="password"></span><input id="password" name="password" type="password" required autocomplete="current-password"></label>
  <button type="submit" data-i18n="login"></button>
  <p id="login-error" class="error" role="alert"></p>
</form>`;

export class Login {
  /**
   * Draws the form into #login-view: make it before the page's first applyTexts().
   * `t`: the page's texts (login_title, username, password, login, bad_login, throttled);
   * `enter(me)`: draw the console for the user now signed in;
   * `hide`: ids of what only a signed-in user sees, besides #console and #logout.
   */
  constructor({ t, enter, hide = [] }) {
    this.t = t;
    this.enter = enter;
    this.hide = hide;
    $("login-view").innerHTML = FORM;
    $("login-form").addEventListener("submit", (ev) => this.submit(ev));
  }

  /** On load: a login the browser still holds goes straight in; otherwise the form, with `message`. */
  async resume(message = "") {
    const r = await api("/api/auth/me", { quiet401: true });
    if (r.ok) await this.enter(await r.json());
    else this.show(message);
  }

  /** The form, with `message` (e.g. why the last login ended); nothing of a signed-in user shown. */
  show(message = "") {
    $("login-view").hidden = false;
    for (const id of ["console", "logout", ...this.hide]) $(id).hidden = true;
    $("who").textContent = "";
    $("login-error").textContent = message;
  }

  /** Signed in: the form gives way, and the header says `who` and offers the logout. */
  signedIn(who) {
    $("login-view").hidden = true;
    $("logout").hidden = false;
    $("who").textContent = who;
  }

  async submit(ev) {
    ev.preventDefault();
    $("login-error").textContent = "";
    const r = await api("/api/auth/login", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ username: $("username").value, password: $("password").value }),
      quiet401: true,
    });
    if (!r.ok) {
      $("login-error").textContent = r.status === 429 ? this.t("throttled") : this.t("bad_login");
      return;
    }
    $("password").value = "";
    const me = await api("/api/auth/me");
    if (me.ok) await this.enter(await me.json());
  }

  /** End the login on the server (the page decides what it closes before or after). */
  logout() {
    return api("/api/auth/logout", { method: "POST", quiet401: true });
  }
}
