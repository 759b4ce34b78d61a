// What the two consoles' text modules (i18n.js, admin-i18n.js) share: zh-CN by default, English on
// request, one choice for both consoles (remembered in localStorage).
const KEY = "liandong.lang";

/** The text functions over `TEXT` (`{ zh: {...}, en: {...} }`; a text may be a function of arguments). */
export function texts(TEXT) {
  let lang = localStorage.getItem(KEY) === "en" ? "en" : "zh";

  /** The text for `key` in the current language (functions take arguments); the key itself if unknown. */
  function t(key, ...args) {
    const v = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
    return typeof v === "function" ? v(...args) : v;
  }

  /** Whether `key` has a text (to fall back to a raw value, e.g. an alarm type nobody translated). */
  function has(key) {
    return key in TEXT[lang] || key in TEXT.zh;
  }

  function currentLang() {
    return lang;
  }

  /** Fill every [data-i18n] element's text and [data-i18n-placeholder]/[data-i18n-title] attribute. */
  function applyTexts(root = document) {
    document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
    for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
    for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
    for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
    const b = document.getElementById("lang");
    if (b) b.textContent = t("lang_button");
  }

  function toggleLang() {
    lang = lang === "zh" ? "en" : "zh";
    localStorage.setItem(KEY, lang);
    applyTexts();
  }

  return { t, has, currentLang, applyTexts, toggleLang };
}
