// Admin console texts: zh-CN by default, English on request (the same choice as the operator console).
const num = (n) => Number(n).toLocaleString("en-US");

const TEXT = {
  zh: {
    title: "安全管理", operator_console: "值班台", logout: "退出", lang_button: "English",
    login_title: "登录联动安全管理", username: "用户名", password: "密码", login: "登录",
    bad_login: "用户名或密码错误", throttled: "登录失败次数过多，请稍后再试", session_expired: "登录已失效，请重新登录",
    no_access: "您的角色无权使用安全管理控制台。", read_only: "只读（审计员）",
    tab_departments: "部门", tab_users: "用户与成员", tab_groups: "摄像机分组", tab_rules: "授权与禁止规则",
    tab_routes: "报警路由", tab_explain: "权限解释", tab_history: "策略历史", tab_audit: "审计日志",
    id: "编号", name: "名称", level: "层级", parent: "上级", area: "街镇", members: "成员", actions: "操作",
    level_district: "区中心", level_subdistrict: "街镇分中心", level_station: "站点", level_department: "部门",
    none: "（无）", save: "保存", preview: "预览影响", confirm_save: "确认保存", cancel: "取消", edit: "编辑",
    delete: "删除", new: "新建", reason: "原因（记入历史）", saved: (rev) => `已保存（修订 ${rev}）`, done: "已完成",
    display_name: "显示名", role: "系统角色", active: "启用", inactive: "已停用", departments: "所属部门",
    new_user: "新建用户", new_password: "新密码（留空不改）", membership_role: "部门内角色", add_membership: "加入部门",
    remove_membership: "移出", user_detail: (u) => `用户 ${u}`, deactivate: "停用", activate: "启用",
    role_operator: "值班员", role_security_admin: "安全管理员", role_auditor: "审计员", role_admin: "系统管理员",
    role_integration: "系统接口",
    group_static: "静态（指定摄像机）", group_dynamic: "动态（按属性）", type: "类型", size: "摄像机数",
    cameras_list: "摄像机编号（逗号或换行分隔）", f_area: "街镇", f_kind: "类型", f_tag: "标签", f_department: "权属部门",
    comma_list: "多个值用逗号分隔", show_members: "查看成员", filter: "筛选条件",
    subject: "主体", target: "对象", action: "动作", effect: "效果", window: "有效期", not_before: "生效时间",
    not_after: "失效时间", tag: "标记", allow: "允许", deny: "禁止", new_rule: "新建规则", edit_rule: (id) => `修改规则 ${id}`,
    act_view_snapshot: "看快照", act_view_live: "看实时视频", act_manage: "管理",
    subject_hint: "dept:部门编号、role:角色 或 *", target_hint: "cam:摄像机编号 或 group:分组编号",
    filter_subject: "按主体筛选", filter_target: "按对象筛选",
    route_type: "报警类型", hours: "值班时段 HH:MM-HH:MM（空为全天）", source: "来源", from_settings: "配置文件",
    from_api: "控制台", new_route: "新建路由",
    who_can_view: "谁能查看摄像机", what_user_views: "用户能查看什么", camera: "摄像机", user: "用户", ask: "查询",
    because: "依据", blocked: "被禁止规则拦截", total_visible: (n) => `共可查看 ${num(n)} 路摄像机`,
    shown_first: (n) => `（显示前 ${num(n)} 路）`, nobody: "无人可查看", system_admin: "系统管理员（全部可见）",
    deactivated: "账号已停用", deny_overrides: "被禁止规则覆盖", no_rule: "没有规则允许",
    revision: "修订", author: "操作人", time: "时间", changes: "变更", rollback: "回滚到此版本", load_more: "加载更多",
    rollback_to: (id) => `回滚到修订 ${id}`,
    kind: "类型", detail: "详情", address: "地址", since: "起", until: "止", incident: "事件", search: "查询",
    export_csv: "导出 CSV", verify: "校验哈希链", chain_ok: (n) => `哈希链完整（已校验 ${num(n)} 条）`,
    chain_broken: (id, p) => `哈希链在第 ${id} 条断裂：${p}`, no_rows: "没有记录",
    preview_title: "变更影响预览", no_effect: "此变更不改变任何用户可见的摄像机。",
    effect_gain: (users, dept, cams) => `此变更使 ${dept} 的 ${num(users)} 名用户多看到 ${num(cams)} 路摄像机`,
    effect_lose: (users, dept, cams) => `此变更使 ${dept} 的 ${num(users)} 名用户少看到 ${num(cams)} 路摄像机`,
    effect_gain_all: (users, cams) => `共 ${num(users)} 名用户多看到 ${num(cams)} 路摄像机`,
    effect_lose_all: (users, cams) => `共 ${num(users)} 名用户少看到 ${num(cams)} 路摄像机`,
    no_department: "无部门", for_action: (a) => `【${a}】`, writes: (n) => `将写入 ${num(n)} 项变更：`,
    users_detail: "受影响用户", gained: "新增", lost: "失去", confirm_delete: "确认删除", confirm_rollback: "确认回滚",
    error: "出错了", forbidden: "您的角色不能执行此操作", not_found: "不存在", computing: "正在计算影响…",
    changed_elsewhere: "策略已被他人修改，列表已刷新",
  },
  en: {
    title: "Security admin", operator_console: "Operator console", logout: "Log out", lang_button: "中文",
    login_title: "Sign in to Liandong security admin", username: "Username", password: "Password", login: "Sign in",
    bad_login: "Wrong username or password", throttled: "Too many failed logins; try again later",
    session_expired: "Your login has ended; please sign in again",
    no_access: "Your role may not use the security admin console.", read_only: "Read-only (auditor)",
    tab_departments: "Departments", tab_users: "Users & memberships", tab_groups: "Camera groups",
    tab_rules: "Grants & deny rules", tab_routes: "Alarm routing", tab_explain: "Explain", tab_history: "Policy history",
    tab_audit: "Audit log",
    id: "Id", name: "Name", level: "Level", parent: "Parent", area: "Sub-district", members: "Members",
    actions: "Actions", level_district: "District centre", level_subdistrict: "Sub-district centre",
    level_station: "Station", level_department: "Department", none: "(none)", save: "Save", preview: "Preview effect",
    confirm_save: "Confirm and save", cancel: "Cancel", edit: "Edit", delete: "Delete", new: "New",
    reason: "Reason (kept in history)", saved: (rev) => `Saved (revision ${rev})`, done: "Done",
    display_name: "Display name", role: "System role", active: "Active", inactive: "Deactivated",
    departments: "Departments", new_user: "New user", new_password: "New password (empty: unchanged)",
    membership_role: "Role in department", add_membership: "Add to department", remove_membership: "Remove",
    user_detail: (u) => `User ${u}`, deactivate: "Deactivate", activate: "Activate",
    role_operator: "Operator", role_security_admin: "Security admin", role_auditor: "Auditor", role_admin: "Admin",
    role_integration: "Integration",
    group_static: "Static (listed cameras)", group_dynamic: "Dynamic (by attribute)", type: "Type", size: "Cameras",
    cameras_list: "Camera ids (comma or newline separated)", f_area: "Sub-district", f_kind: "Kind", f_tag: "Tag",
    f_department: "Owning department", comma_list: "Separate several values with commas", show_members: "Members",
    filter: "Filter",
    subject: "Subject", target: "Target", action: "Action", effect: "Effect", window: "Valid", not_before: "Valid from",
    not_after: "Valid until", tag: "Tag", allow: "allow", deny: "deny", new_rule: "New rule",
    edit_rule: (id) => `Change rule ${id}`, act_view_snapshot: "snapshots", act_view_live: "live video",
    act_manage: "manage", subject_hint: "dept:<id>, role:<name> or *", target_hint: "cam:<id> or group:<id>",
    filter_subject: "Filter by subject", filter_target: "Filter by target",
    route_type: "Alarm type", hours: "On duty HH:MM-HH:MM (empty: always)", source: "Source",
    from_settings: "settings file", from_api: "console", new_route: "New route",
    who_can_view: "Who can view camera", what_user_views: "What can user view", camera: "Camera", user: "User",
    ask: "Ask", because: "Because", blocked: "Blocked by a deny rule",
    total_visible: (n) => `${num(n)} cameras visible`, shown_first: (n) => ` (first ${num(n)} shown)`,
    nobody: "Nobody may view it", system_admin: "System admin (sees everything)", deactivated: "Account deactivated",
    deny_overrides: "a deny rule overrides", no_rule: "no rule allows it",
    revision: "Revision", author: "Author", time: "Time", changes: "Changes", rollback: "Roll back to here",
    load_more: "Load more", rollback_to: (id) => `Roll back to revision ${id}`,
    kind: "Kind", detail: "Detail", address: "Address", since: "From", until: "Until", incident: "Incident",
    search: "Search", export_csv: "Export CSV", verify: "Verify hash chain",
    chain_ok: (n) => `Hash chain intact (${num(n)} entries checked)`,
    chain_broken: (id, p) => `Hash chain broken at entry ${id}: ${p}`, no_rows: "No entries",
    preview_title: "Effect of this change", no_effect: "This change does not change what anyone may see.",
    effect_gain: (users, dept, cams) => `This change lets ${num(users)} users of ${dept} see ${num(cams)} more cameras`,
    effect_lose: (users, dept, cams) => `This change stops ${num(users)} users of ${dept} seeing ${num(cams)} cameras`,
    effect_gain_all: (users, cams) => `In all ${num(users)} users see ${num(cams)} more cameras`,
    effect_lose_all: (users, cams) => `In all ${num(users)} users lose ${num(cams)} cameras`,
    no_department: "no department", for_action: (a) => `[${a}] `, writes: (n) => `It writes ${num(n)} change(s):`,
    users_detail: "Users affected", gained: "gains", lost: "loses", confirm_delete: "Confirm delete",
    confirm_rollback: "Confirm rollback", error: "Something went wrong", forbidden: "Your role may not do this",
    not_found: "Not found", computing: "Computing the effect…",
    changed_elsewhere: "The policy was changed elsewhere; the lists were refreshed",
  },
};

let lang = localStorage.getItem("liandong.lang") === "en" ? "en" : "zh";

/** The text for `key` in the current language (functions take arguments); the key itself if unknown. */
export function t(key, ...args) {
  const v = TEXT[lang][key] ?? TEXT.zh[key] ?? key;
  return typeof v === "function" ? v(...args) : v;
}

/** Fill every [data-i18n] element's text and [data-i18n-placeholder] attribute. */
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

// The server explains refusals in English; the console shows the usual ones in Chinese (others as sent).
const SERVER_ZH = [
  [/^must be dept:<id>, role:<name> or \*$/, () => "须为 dept:部门编号、role:角色 或 *"],
  [/^must be cam:<id> or group:<id>$/, () => "须为 cam:摄像机编号 或 group:分组编号"],
  [/^must be one of (.+)$/, (m) => `须为以下之一：${m[1]}`],
  [/^must be allow or deny$/, () => "须为 allow（允许）或 deny（禁止）"],
  [/^must be later than not_before$/, () => "须晚于生效时间"],
  [/^needs a timezone$/, () => "需要时区"],
  [/^nothing would change$/, () => "没有任何变化"],
  [/^an identical rule exists$/, () => "已存在相同的规则"],
  [/^no department '(.+)'$/, (m) => `部门“${m[1]}”不存在`],
  [/^no group '(.+)'$/, (m) => `分组“${m[1]}”不存在`],
  [/^no camera '(.+)'$/, (m) => `摄像机“${m[1]}”不存在`],
  [/^no user (\d+)$/, (m) => `用户 ${m[1]} 不存在`],
  [/^no rule (\d+)$/, (m) => `规则 ${m[1]} 不存在`],
  [/^no such department$/, () => "部门不存在"],
  [/^would make a cycle$/, () => "会形成上下级循环"],
  [/^1-64 letters, digits, '\.', '_' or '-'$/, () => "1-64 个字母、数字或 . _ -"],
  [/^1-64 letters, digits or \. _ @ -$/, () => "1-64 个字母、数字或 . _ @ -"],
  [/^1-128 characters$/, () => "1-128 个字符"],
  [/^'(.+)' already exists/, (m) => `“${m[1]}”已存在`],
  [/^the user is not in that department$/, () => "该用户不在此部门"],
  [/^give either cameras .+$/, () => "请填写摄像机编号（静态分组）或筛选条件（动态分组）"],
  [/^unknown attribute .+$/, () => "未知属性（可用：街镇、类型、标签、权属部门）"],
  [/^each attribute needs a non-empty list of values$/, () => "每个属性至少需要一个值"],
  [/^(\d+) does not exist$/, (m) => `修订 ${m[1]} 不存在`],
  [/^(\d+) is already the newest$/, (m) => `修订 ${m[1]} 已是最新`],
  [/^cannot roll back to (\d+)/, (m) => `无法回滚到修订 ${m[1]}：其依赖的用户、部门或分组已不存在或已重建；未做任何更改`],
  [/^unknown department\(s\) (.+)$/, (m) => `未知部门：${m[1]}`],
  [/^only admins may .+$/, () => "只有系统管理员可以这样做"],
  [/^String should have at least (\d+) characters?$/, (m) => `至少 ${m[1]} 个字符`],
  [/^String should have at most (\d+) characters?$/, (m) => `最多 ${m[1]} 个字符`],
  [/^String should match pattern .+$/, () => "格式不正确"],
  [/^Field required$/, () => "必填"],
  [/^Input should be a valid integer.*$/, () => "须为整数"],
  [/^Input should be a valid datetime.*$/, () => "须为有效时间"],
  [/^Value error, (.+)$/, (m) => serverText(m[1])],
];

/** A server message in the console's language (known refusals are translated; others as sent). */
export function serverText(message) {
  const text = String(message ?? "");
  if (lang === "en") return text;
  for (const [re, zh] of SERVER_ZH) {
    const m = text.match(re);
    if (m) return zh(m);
  }
  return text;
}
