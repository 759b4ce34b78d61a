// Console texts: zh-CN by default, English on request (remembered in localStorage).
const TEXT = {
  zh: {
    layout: "布局", logout: "退出", login_title: "登录联动视频平台", username: "用户名", password: "密码",
    login: "登录", search: "搜索名称或编号", all_areas: "全部街镇", all_kinds: "全部类型", kind_fixed: "固定",
    kind_bus: "公交", kind_truck: "危化品车", count: (n) => `共 ${n} 路可见摄像机`, lang_button: "English",
    connecting: "连接中…", playing: "播放中", denied: "无权查看此摄像机（已记录）", bad_login: "用户名或密码错误",
    throttled: "登录失败次数过多，请稍后再试", codec: "该摄像机为 H.265 编码，浏览器无法直接播放（需转码）",
    unavailable: "摄像机无法连接", ended: "视频已结束", revoked: "查看权限已被撤销，视频已关闭",
    failed: "播放失败", alarm: "报警", status_live: "在线", status_idle: "空闲", status_reconnecting: "重连中", status_failed: "故障",
  },
  en: {
    layout: "Layout", logout: "Log out", login_title: "Sign in to Liandong", username: "Username", password: "Password",
    login: "Sign in", search: "Search name or id", all_areas: "All sub-districts", all_kinds: "All kinds",
    kind_fixed: "Fixed", kind_bus: "Bus", kind_truck: "Truck", count: (n) => `${n} cameras you may view`,
    lang_button: "中文", connecting: "Connecting…", playing: "Playing", denied: "You may not view this camera (logged)",
    bad_login: "Wrong username or password", throttled: "Too many failed logins; try again later",
    codec: "This camera sends H.265, which browsers cannot play without transcoding",
    unavailable: "Camera unreachable", ended: "Stream ended", revoked: "Your permission was withdrawn; the stream was closed",
    failed: "Playback failed", alarm: "ALARM", status_live: "live", status_idle: "idle", status_reconnecting: "reconnecting",
    status_failed: "failed",
  },
};

let lang = localStorage.getItem("liandong.lang") === "en" ? "en" : "zh";

export function t(key, ...args) {
  const v = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
  return typeof v === "function" ? v(...args) : v;
}

export function currentLang() {
  return lang;
}

export function applyTexts(root = document) {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  const b = document.getElementById("lang");
  if (b) b.textContent = t("lang_button");
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("liandong.lang", lang);
  applyTexts();
}
