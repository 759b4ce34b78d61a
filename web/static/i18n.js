// Console texts: zh-CN by default, English on request (remembered in localStorage).
const num = (n) => Number(n).toLocaleString("en-US"); // 20,003 reads the same in both languages

const TEXT = {
  zh: {
    layout: "布局", logout: "退出", login_title: "登录联动视频平台", username: "用户名", password: "密码",
    login: "登录", search: "搜索名称、编号或街镇", all_areas: "全部街镇", all_kinds: "全部类型",
    all_statuses: "全部状态", all_departments: "全部部门", kind_fixed: "固定", kind_bus: "公交", kind_truck: "危化品车",
    count: (n) => `共 ${num(n)} 路可见摄像机`, count_filtered: (n, all) => `筛选出 ${num(n)} 路（共 ${num(all)} 路可见）`,
    lang_button: "English", loading: "加载中…", list_empty: "没有符合条件的摄像机", list_failed: "摄像机列表加载失败",
    connecting: "连接中…", playing: "播放中",
    denied: "无权查看此摄像机（已记录）", bad_login: "用户名或密码错误",
    throttled: "登录失败次数过多，请稍后再试", session_expired: "登录已失效，请重新登录",
    codec: "该摄像机为 H.265 编码，浏览器无法直接播放（需转码）",
    unavailable: "摄像机无法连接", not_found: "摄像机不存在", busy: "服务器繁忙，请稍后重试",
    ended: "视频已结束（服务器关闭了会话）", revoked: "查看权限已被撤销，视频已关闭",
    failed: "播放失败", retry: "重试", close: "关闭",
    alarm: "报警", status_online: "在线", status_offline: "离线", status_error: "故障", status_unknown: "未检测",
    stream_live: "直播中", stream_connecting: "连接中", stream_reconnecting: "重连中", stream_failed: "故障",
    thumb_stale: "快照已过期：摄像机未响应", latency: "延迟", first_frame: "首帧",
    admin_console: "安全管理",
  },
  en: {
    layout: "Layout", logout: "Log out", login_title: "Sign in to Liandong", username: "Username", password: "Password",
    login: "Sign in", search: "Search name, id or sub-district", all_areas: "All sub-districts", all_kinds: "All kinds",
    all_statuses: "All statuses", all_departments: "All departments", kind_fixed: "Fixed", kind_bus: "Bus",
    kind_truck: "Truck", count: (n) => `${num(n)} cameras you may view`,
    count_filtered: (n, all) => `${num(n)} match (of ${num(all)} you may view)`,
    lang_button: "中文", loading: "Loading…", list_empty: "No camera matches", list_failed: "Could not load the cameras",
    connecting: "Connecting…", playing: "Playing",
    denied: "You may not view this camera (logged)", bad_login: "Wrong username or password",
    throttled: "Too many failed logins; try again later", session_expired: "Your login has ended; please sign in again",
    codec: "This camera sends H.265, which browsers cannot play without transcoding",
    unavailable: "Camera unreachable", not_found: "No such camera", busy: "Server busy; try again shortly",
    ended: "Stream ended (the server closed the session)", revoked: "Your permission was withdrawn; the stream was closed",
    failed: "Playback failed", retry: "Retry", close: "Close",
    alarm: "ALARM", status_online: "online", status_offline: "offline", status_error: "error", status_unknown: "unchecked",
    stream_live: "live", stream_connecting: "connecting", stream_reconnecting: "reconnecting", stream_failed: "failed",
    thumb_stale: "Old snapshot: the camera is not answering", latency: "latency", first_frame: "first frame",
    admin_console: "Security admin",
  },
};

let lang = localStorage.getItem("liandong.lang") === "en" ? "en" : "zh";

/** The text for `key` in the current language (functions take arguments); the key itself if unknown. */
export function t(key, ...args) {
  const v = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
  return typeof v === "function" ? v(...args) : v;
}

export function currentLang() {
  return lang;
}

/** Fill every [data-i18n] element's text and [data-i18n-placeholder]/[data-i18n-title] attribute. */
export function applyTexts(root = document) {
  document.documentElement.lang = lang === "en" ? "en" : "zh-CN";
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll("[data-i18n-placeholder]")) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll("[data-i18n-title]")) el.title = t(el.dataset.i18nTitle);
  const b = document.getElementById("lang");
  if (b) b.textContent = t("lang_button");
}

export function toggleLang() {
  lang = lang === "zh" ? "en" : "zh";
  localStorage.setItem("liandong.lang", lang);
  applyTexts();
}
