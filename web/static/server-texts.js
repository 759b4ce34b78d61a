// The server's refusals in Chinese: one table for both consoles (the admin console's serverText and
// the operator console's error messages). The server explains refusals in English ("field: reason"),
// so they stay greppable in logs and the API; the consoles show the reason in the reader's language.
// tests/web/test_zh_texts.py checks that every policy refusal the server can send has a line here.

export const SERVER_ZH = [
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
  [/^0-1000$/, () => "须为 0 到 1000 之间的整数"],
  [/^'(.+)' already exists/, (m) => `“${m[1]}”已存在`],
  [/^the user is not in that department$/, () => "该用户不在此部门"],
  [/^give either cameras .+$/, () => "请填写摄像机编号（静态分组）或筛选条件（动态分组）"],
  [/^unknown attribute .+$/, () => "未知属性（可用：街镇、居村委工作站、类型、标签、权属部门）"],
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
  [/^required$/, () => "必填"],
  [/^Input should be a valid integer.*$/, () => "须为整数"],
  [/^Input should be a valid datetime.*$/, () => "须为有效时间"],
  [/^at most (\d+)$/, (m) => `最多 ${m[1]} 个`],
  [/^at most (\d+) characters$/, (m) => `最多 ${m[1]} 个字符`],
  [/^none given$/, () => "未提供任何规则"],
  [/^unknown kind (.+)$/, (m) => `未知的变更类型：${m[1]}`],
  [/^no user '(.+)'$/, (m) => `用户“${m[1]}”不存在`],
  [/^rule (\d+) belongs to '(.+)' and cannot be edited; delete it$/, (m) => `规则 ${m[1]} 属于“${m[2]}”，不能修改，只能删除`],
  [/^no vehicle '(.+)' you may view$/, (m) => `车辆“${m[1]}”不存在或无权查看`],
  [/^Value error, (.+)$/, (m) => translateServer(m[1], "zh")],
];

/** `message` in `lang` ("zh" or "en"): a known refusal translated ("field: reason" keeps its field),
 * anything else as sent. */
export function translateServer(message, lang) {
  const text = String(message ?? "");
  if (lang === "en") return text;
  for (const [re, zh] of SERVER_ZH) {
    const m = text.match(re);
    if (m) return zh(m);
  }
  const at = text.indexOf(": ");
  if (at > 0 && /^[\w.]+$/.test(text.slice(0, at))) {
    const reason = translateServer(text.slice(at + 2), lang);
    if (reason !== text.slice(at + 2)) return `${text.slice(0, at)}：${reason}`;
  }
  return text;
}
