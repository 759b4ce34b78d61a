// Case steps the alarm panel offers beyond an alarm's old ones: the reporter's call-back (confirm,
// recorded as satisfied; an unsatisfied reporter is a reopen) and the verification on site by someone
// other than the handler (verify, passed, with what was found). Their labels live here, beside the
// steps, so the console's text tables stay untouched.
import { currentLang } from "./i18n.js";

const LABELS = {
  zh: {
    act_confirm: "回访满意",
    act_verify: "核实通过",
    state_confirmed: "已回访",
    state_verified: "已核实",
    act_photo: "上传照片",
    verify_needs_text: "核实需填写现场情况",
  },
  en: {
    act_confirm: "Reporter satisfied",
    act_verify: "Verified on site",
    state_confirmed: "reporter confirmed",
    state_verified: "verified",
    act_photo: "photo added",
    verify_needs_text: "Say what you found on site before verifying",
  },
};

/** Steps whose note is required (and sent as their text). */
export const NEEDS_TEXT = new Set(["note", "verify"]);

/** This module's label for `key`, or null when it has none (the console's own texts answer). */
export function caseLabel(key) {
  return LABELS[currentLang() === "en" ? "en" : "zh"][key] ?? null;
}

/** What a case step sends besides its text. */
export function stepExtras(action) {
  if (action === "confirm") return { result: "satisfied" };
  if (action === "verify") return { passed: true };
  return {};
}
