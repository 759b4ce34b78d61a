// Console texts: zh-CN by default, English on request (remembered in localStorage).
import { translateServer } from "./server-texts.js";
import { texts } from "./texts.js";

const num = (n) => Number(n).toLocaleString("en-US"); // 20,003 reads the same in both languages

const TEXT = {
  zh: {
    layout: "布局", logout: "退出", login_title: "登录联动视频平台", username: "用户名", password: "密码",
    login: "登录", search: "搜索名称、编号或街镇", all_areas: "全部街镇", all_kinds: "全部类型",
    all_statuses: "全部状态", all_departments: "全部部门", kind_fixed: "固定", kind_bus: "公交", kind_truck: "危化品车",
    count: (n) => `共 ${num(n)} 路可见摄像机`, count_filtered: (n, all) => `筛选出 ${num(n)} 路（共 ${num(all)} 路可见）`,
    lang_button: "English", loading: "加载中…", list_empty: "没有符合条件的摄像机", list_failed: "摄像机列表加载失败",
    connecting: "连接中…", playing: "播放中", reconnecting: "连接中断，正在重新连接…",
    denied: "无权查看此摄像机（已记录）", bad_login: "用户名或密码错误",
    throttled: "登录失败次数过多，请稍后再试", session_expired: "登录已失效，请重新登录",
    codec: "该摄像机为 H.265 编码，浏览器无法直接播放（需转码）",
    unavailable: "摄像机无法连接", not_found: "摄像机不存在", busy: "服务器繁忙，请稍后重试",
    ended: "视频已结束（服务器关闭了会话）", revoked: "查看权限已被撤销，视频已关闭",
    failed: "播放失败", retry: "重试", close: "关闭",
    alarm: "报警", status_online: "在线", status_offline: "离线", status_error: "故障", status_unknown: "未检测",
    stream_live: "直播中", stream_connecting: "连接中", stream_reconnecting: "重连中", stream_failed: "故障",
    thumb_stale: "快照已过期：摄像机未响应", latency: "延迟", first_frame: "首帧",
    view_wall: "视频墙", view_map: "地图", view_dashboard: "统计", incidents: "警情", layer_cameras: "固定摄像机",
    snapshot: "截图下载", snapshot_failed: "截图失败", fullscreen: "全屏", playback: "回放（再点回到实时）", inc_recordings: "事件录像", map_no_tiles: "未配置底图服务：仅显示区界、摄像机和车辆",
    inc_open: "未结警情", inc_all: "全部警情", inc_none: "暂无警情", sound: "提示音", sound_on: "提示音：开（点击静音）",
    sound_off: "提示音：关（点击开启）", no_area: "未知街镇", not_dispatched: "未派遣",
    state_new: "新警情", state_dispatched: "已派遣", state_acknowledged: "已签收", state_on_site: "已到场",
    state_resolved: "已处置", state_closed: "已办结", type_panic: "一键报警",
    deadline_onsite: "到场时限", deadline_resolve: "处置时限", overdue: "已超时",
    open_cameras: "打开摄像机", note_placeholder: "备注 / 办结说明", act_failed: "操作失败",
    ptz_up: "上", ptz_down: "下", ptz_left: "左", ptz_right: "右", ptz_zoom_in: "放大", ptz_zoom_out: "缩小",
    ptz_goto: "转到预置位", ptz_held: (unit, s) => `云台正由${unit}控制，${s} 秒后可用`,
    ptz_locked: (inc, s) => `云台已被警情 ${inc} 锁定（剩余 ${s} 秒）`, ptz_too_fast: "云台操作过于频繁",
    ptz_failed: "云台操作失败",
    act_opened: "报警", act_dispatch: "派遣", act_acknowledge: "签收", act_onsite: "到场", act_resolve: "处置完毕",
    act_close: "办结", act_confirm: "回访满意", act_verify: "核实通过", act_reopen: "重新打开", act_escalate: "上报区中心", act_note: "添加备注", act_cameras: "追加摄像机",
    note_needs_text: "请先填写备注", close_needs_text: "办结需说明如何与报警人确认",
    dash_total: "警情总数", dash_open: "未结", dash_handled: "已处置", dash_handled_pct: "处置率", dash_overdue: "超时",
    dash_cameras_offline: "离线摄像机", dash_by_area: "各街镇警情", dash_by_department: "各部门警情",
    dash_offline_by_area: "各街镇离线摄像机", period_today: "今日", period_7d: "近 7 天", period_30d: "近 30 天",
    period_all: "全部时间", dash_none: "暂无数据", dash_handled_short: "已处置", dash_overdue_short: "超时",
    admin_console: "安全管理",
    all_stations: "全部居村委工作站", vehicle_details: "车辆详情",
    unit_days: (n) => `${n}天`, unit_seconds: (n) => `${n}秒`, unit_minutes: (n) => `${n}分钟`, unit_hours: (n) => `${n}小时`, vehicle_plate: "车牌", vehicle_line: "线路", vehicle_driver: "驾驶员",
    vehicle_driver_phone: "驾驶员电话", vehicle_escort: "押运员", vehicle_cargo: "装载货物", vehicle_company: "所属企业",
    vehicle_home_district: "注册地", vehicle_open_cameras: (n) => `打开车载摄像机（${n} 路）`,
    vehicle_no_cameras: "该车暂无摄像机", vehicle_hidden: "无权查看该车辆详情；外区危化品车仅在本区内时共享",
    actor_follow: "系统（跟随车辆追加）", actor_source: (name) => `报警系统（${name}）`, actor_system: "系统",
  },
  en: {
    layout: "Layout", logout: "Log out", login_title: "Sign in to Liandong", username: "Username", password: "Password",
    login: "Sign in", search: "Search name, id or sub-district", all_areas: "All sub-districts", all_kinds: "All kinds",
    all_statuses: "All statuses", all_departments: "All departments", kind_fixed: "Fixed", kind_bus: "Bus",
    kind_truck: "Truck", count: (n) => `${num(n)} cameras you may view`,
    count_filtered: (n, all) => `${num(n)} match (of ${num(all)} you may view)`,
    lang_button: "中文", loading: "Loading…", list_empty: "No camera matches", list_failed: "Could not load the cameras",
    connecting: "Connecting…", playing: "Playing", reconnecting: "Stream dropped; reconnecting…",
    denied: "You may not view this camera (logged)", bad_login: "Wrong username or password",
    throttled: "Too many failed logins; try again later", session_expired: "Your login has ended; please sign in again",
    codec: "This camera sends H.265, which browsers cannot play without transcoding",
    unavailable: "Camera unreachable", not_found: "No such camera", busy: "Server busy; try again shortly",
    ended: "Stream ended (the server closed the session)", revoked: "Your permission was withdrawn; the stream was closed",
    failed: "Playback failed", retry: "Retry", close: "Close",
    alarm: "ALARM", status_online: "online", status_offline: "offline", status_error: "error", status_unknown: "unchecked",
    stream_live: "live", stream_connecting: "connecting", stream_reconnecting: "reconnecting", stream_failed: "failed",
    thumb_stale: "Old snapshot: the camera is not answering", latency: "latency", first_frame: "first frame",
    view_wall: "Wall", view_map: "Map", view_dashboard: "Dashboard", incidents: "Incidents", layer_cameras: "Fixed cameras",
    snapshot: "Download snapshot", snapshot_failed: "Snapshot failed", fullscreen: "Full screen",
    playback: "Play back (again: back to live)", inc_recordings: "Recordings",
    map_no_tiles: "No tile server configured: boundary, cameras and vehicles only",
    inc_open: "Open incidents", inc_all: "All incidents", inc_none: "No incidents", sound: "Alarm sound",
    sound_on: "Sound on (click to mute)", sound_off: "Sound off (click to unmute)", no_area: "unknown area",
    not_dispatched: "not dispatched",
    state_new: "new", state_dispatched: "dispatched", state_acknowledged: "acknowledged", state_on_site: "on site",
    state_resolved: "resolved", state_closed: "closed", type_panic: "panic alarm",
    deadline_onsite: "on site in", deadline_resolve: "resolve in", overdue: "overdue by",
    open_cameras: "Open cameras", note_placeholder: "Note / how the reporter confirmed", act_failed: "Failed",
    ptz_up: "Up", ptz_down: "Down", ptz_left: "Left", ptz_right: "Right", ptz_zoom_in: "Zoom in", ptz_zoom_out: "Zoom out",
    ptz_goto: "Go to preset", ptz_held: (unit, s) => `PTZ held by ${unit}; free in ${s} s`,
    ptz_locked: (inc, s) => `PTZ locked by incident ${inc} (${s} s left)`, ptz_too_fast: "Too many PTZ commands",
    ptz_failed: "PTZ command failed",
    act_opened: "alarm", act_dispatch: "Dispatch", act_acknowledge: "Acknowledge", act_onsite: "On site",
    act_resolve: "Resolved", act_close: "Close", act_confirm: "Reporter satisfied", act_verify: "Verified on site", act_reopen: "Reopen", act_escalate: "Escalate to district",
    act_note: "Add note", act_cameras: "cameras added",
    note_needs_text: "Write the note first", close_needs_text: "Say how the reporter confirmed before closing",
    dash_total: "Incidents", dash_open: "Open", dash_handled: "Handled", dash_handled_pct: "Handled", dash_overdue: "Overdue",
    dash_cameras_offline: "Cameras offline", dash_by_area: "Incidents by sub-district",
    dash_by_department: "Incidents by department", dash_offline_by_area: "Cameras offline by sub-district",
    period_today: "Today", period_7d: "Last 7 days", period_30d: "Last 30 days", period_all: "All time",
    dash_none: "Nothing yet", dash_handled_short: "handled", dash_overdue_short: "overdue",
    admin_console: "Security admin",
    all_stations: "All neighbourhood stations", vehicle_details: "Vehicle",
    unit_days: (n) => `${n}d `, unit_seconds: (n) => `${n} s`, unit_minutes: (n) => `${n} min`, unit_hours: (n) => `${n} h`, vehicle_plate: "Plate", vehicle_line: "Line", vehicle_driver: "Driver",
    vehicle_driver_phone: "Driver's phone", vehicle_escort: "Escort", vehicle_cargo: "Cargo", vehicle_company: "Company",
    vehicle_home_district: "Registered in", vehicle_open_cameras: (n) => `Open its cameras (${n})`,
    vehicle_no_cameras: "No camera on this vehicle yet",
    vehicle_hidden: "You may not see this vehicle; trucks from elsewhere are shared only inside the district",
    actor_follow: "system (following the vehicle)", actor_source: (name) => `alarm system (${name})`, actor_system: "system",
  },
};

export const { t, has, currentLang, applyTexts, toggleLang } = texts(TEXT);

/** Who took a step in an incident's history: a username as it is; the gateway's own actors
 * (`source:<alarm source>`, `follow`; none: the gateway itself) in the console's language. */
export function actorName(by) {
  if (!by) return t("actor_system");
  if (by === "follow") return t("actor_follow");
  if (by.startsWith("source:")) return t("actor_source", by.slice("source:".length));
  return by;
}

/** A server refusal in the console's language (the table both consoles share, server-texts.js). */
export function serverText(message) {
  return translateServer(message, currentLang());
}
