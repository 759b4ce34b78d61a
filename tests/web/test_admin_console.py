"""The security-admin console in a real Chromium: editing with validation, preview of the effect,
a grant reaching an operator's open console without a reload, rollback, explain, audit, auditors."""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import expect

from acl.authorizer import ACTIONS
from acl.models import Role
from tests.live import PASSWORD, LiveGateway
from tests.web.conftest import chromium_context
from tests.web.helpers import add_operator, login, user_id

pytestmark = [pytest.mark.browser]


async def admin_login(page: Any, g: LiveGateway, user: str) -> None:
    """Open /admin and log in through its form."""
    await page.goto(g.base_url + "/admin")
    await page.fill("#username", user)
    await page.fill("#password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("body[data-loaded='1']")).to_have_count(1)


def watch(page: Any) -> list[str]:
    """Uncaught errors and CSP violations on a page (the test asserts none happened)."""
    problems: list[str] = []
    page.on("pageerror", lambda e: problems.append(f"uncaught: {e}"))
    page.on("console", lambda m: problems.append(f"console: {m.text}") if "Content Security Policy" in m.text else None)
    return problems


@pytest.fixture
async def operator_context(tmp_path: Path) -> AsyncIterator[Any]:
    """A second, separate browser (its own profile and cookies) for the operator."""
    async with chromium_context(tmp_path / "operator-profile", 1200, 800) as ctx:
        yield ctx


async def setup_city(g: LiveGateway, admin: dict[str, str], operator: str) -> dict[str, str]:
    """A department 城管 with the operator in it, and a security admin; the admin's headers."""
    await add_operator(g, admin, operator)
    r = await g.client.put("/api/admin/departments/city", json={"name": "城管"}, headers=admin)
    assert r.status_code == 200, r.text
    uid = await user_id(g, admin, operator)
    r = await g.client.put(f"/api/admin/users/{uid}/memberships/city", json={}, headers=admin)
    assert r.status_code == 200, r.text
    return await g.add_user("sec", Role.security_admin)


async def test_a_security_admin_edits_with_field_errors_and_sees_only_their_tabs(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    sec = await setup_city(g, admin, "op-city")
    page = console_page
    await admin_login(page, g, "sec")
    await expect(page.locator("#read-only")).to_be_hidden()
    await expect(page.locator("#tabs button[data-tab='audit']")).to_be_hidden()  # auditors' and admins' only
    await expect(page.locator("#tabs button[data-tab='routes']")).to_be_visible()
    await expect(page.locator("#dept-table tr[data-dept='city']")).to_contain_text("城管")

    # A new user with a short password: the server's message appears next to the password field.
    await page.click("#tabs button[data-tab='users']")
    await page.fill("#user-form [name=username]", "op-new")
    await page.fill("#user-form [name=password]", "short")
    await page.click("#user-form button[type=submit]")
    err = page.locator("#user-form [data-field='password'] .field-error")
    await expect(err).to_have_text("至少 8 个字符")  # the server's refusal, in the console's language
    await expect(page.locator("#user-form [name=password]")).to_have_attribute("aria-invalid", "true")
    assert "op-new" not in [u["username"] for u in (await g.client.get("/api/admin/users", headers=admin)).json()]
    await page.fill("#user-form [name=password]", PASSWORD)
    await page.click("#user-form button[type=submit]")
    await expect(page.locator("#user-table tr", has_text="op-new")).to_have_count(1)
    await expect(err).to_have_count(0)

    # A rule naming a group that does not exist: refused at preview, next to the target field; nothing stored.
    await page.click("#tabs button[data-tab='rules']")
    await page.fill("#rule-form [name=subject]", "dept:city")
    await page.fill("#rule-form [name=target]", "group:nope")
    await page.click("#rule-form button[type=submit]")
    target_err = page.locator("#rule-form [data-field='target'] .field-error")
    await expect(target_err).to_have_text("分组“nope”不存在")
    await expect(page.locator("#preview")).to_be_hidden()
    await page.click("#lang")
    await page.click("#rule-form button[type=submit]")
    await expect(target_err).to_have_text("no group 'nope'")
    await page.click("#lang")
    # A window that ends before it starts: the error is next to "valid until".
    await page.fill("#rule-form [name=target]", "cam:cam-xz")
    await page.fill("#rule-form [name=not_before]", "2030-01-02T10:00")
    await page.fill("#rule-form [name=not_after]", "2030-01-01T10:00")
    await page.click("#rule-form button[type=submit]")
    await expect(page.locator("#rule-form [data-field='not_after'] .field-error")).to_have_text("须晚于生效时间")
    await expect(page.locator("#rule-form [data-field='target'] .field-error")).to_have_count(0)
    rules = (await g.client.get("/api/admin/rules", headers=admin)).json()
    assert [r for r in rules if r["subject"] == "dept:city"] == []
    # Fixed, previewed and saved; then narrowed to snapshots (the preview shows the loss); then deleted.
    await page.fill("#rule-form [name=not_before]", "")
    await page.fill("#rule-form [name=not_after]", "")
    await page.click("#rule-form button[type=submit]")
    preview = page.locator("#preview")
    await expect(preview.locator(".effect-gain").first).to_contain_text("城管 的 1 名用户多看到 1 路摄像机")
    await page.click("#preview-confirm")
    row = page.locator("#rule-table tr", has_text="dept:city")
    await expect(row).to_contain_text("看实时视频")
    await row.locator("button:has-text('编辑')").click()
    await expect(page.locator("#rule-form-title")).to_contain_text("修改规则")
    await page.select_option("#rule-form [name=action]", "view_snapshot")
    await page.click("#rule-form button[type=submit]")
    await expect(preview.locator(".effect-action[data-action='view_live'] .effect-lose")).to_contain_text("少看到 1 路")
    await expect(preview.locator(".effect-action[data-action='view_snapshot'] .effect-lose")).to_have_count(0)
    await page.click("#preview-confirm")
    await expect(row).to_contain_text("看快照")
    await expect(page.locator("#rule-form-title")).to_have_text("新建规则")
    await row.locator("button:has-text('删除')").click()
    await expect(preview.locator(".effect-action[data-action='view_snapshot'] .effect-lose")).to_contain_text(
        "少看到 1 路"
    )
    await page.click("#preview-confirm")
    await expect(row).to_have_count(0)
    # Every action of the policy is offered, recordings' included: a playback grant made with the picker.
    for picker in ("#rule-form", "#explain-camera-form", "#explain-user-form"):
        offered = await page.locator(f"{picker} [name=action] option").evaluate_all("os => os.map(o => o.value)")
        assert sorted(offered) == sorted(ACTIONS), (picker, offered)
    await page.fill("#rule-form [name=subject]", "dept:city")
    await page.fill("#rule-form [name=target]", "cam:cam-xz")
    await page.select_option("#rule-form [name=action]", "playback")
    await page.click("#rule-form button[type=submit]")
    await expect(preview.locator(".diff-add")).to_have_text("+ 允许 dept:city → cam:cam-xz · 回放录像")
    await page.click("#preview-confirm")
    await expect(row).to_contain_text("回放录像")
    assert [r["action"] for r in (await g.client.get("/api/admin/rules?subject=dept:city", headers=admin)).json()] == [
        "playback"
    ]
    # An evidence lock is a revision of the policy history, shown as what it is.
    r = await g.client.post(
        "/api/cameras/cam-xz/recordings/locks",
        json={"start": "2030-01-01T10:00:00+08:00", "end": "2030-01-01T11:00:00+08:00", "reason": "案件 17"},
        headers=sec,
    )
    assert r.status_code == 201, r.text
    await page.click("#tabs button[data-tab='history']")
    newest = page.locator("#revision-list > li").first
    await expect(newest).to_contain_text("证据锁定")
    await expect(newest).to_contain_text("cam:cam-xz")
    await expect(newest).to_contain_text("案件 17")

    # Departments: a parent that would make a cycle is refused next to the parent field.
    await page.click("#tabs button[data-tab='departments']")
    await page.fill("#dept-form [name=id]", "city-east")
    await page.fill("#dept-form [name=name]", "城管东片")
    await page.select_option("#dept-form [name=parent_id]", "city")
    await page.click("#dept-form button[type=submit]")
    await expect(page.locator("#dept-table tr[data-dept='city-east']")).to_contain_text("城管")
    await page.click("#dept-table tr[data-dept='city'] button:has-text('编辑')")
    await page.select_option("#dept-form [name=parent_id]", "city-east")
    await page.click("#dept-form button[type=submit]")
    await expect(page.locator("#dept-form [data-field='parent_id'] .field-error")).to_have_text("会形成上下级循环")
    await page.click("#dept-form button[type=reset]")
    await page.click("#dept-table tr[data-dept='city-east'] button:has-text('删除')")
    await expect(page.locator("#preview .effect-none")).to_be_visible()
    await expect(page.locator("#preview .diff-remove")).to_contain_text("dept:city-east 城管东片")
    await page.click("#preview-confirm")
    await expect(page.locator("#dept-table tr[data-dept='city-east']")).to_have_count(0)


async def test_preview_then_a_grant_reaches_the_operator_without_reload_and_rollback_takes_it_back(
    web_gateway: tuple[LiveGateway, Any], console_page: Any, operator_context: Any
) -> None:
    g, admin = web_gateway
    await setup_city(g, admin, "op-city")
    await add_operator(g, admin, "op-other")  # in no department: unaffected
    # The operator's console is open in another browser, showing nothing yet.
    op_page = await operator_context.new_page()
    op_problems = watch(op_page)
    await login(op_page, g, "op-city")
    await expect(op_page.locator("#count")).to_have_text("共 0 路可见摄像机")
    await expect(op_page.locator("#admin-link")).to_be_hidden()  # operators have no admin console
    await op_page.evaluate("() => { window.sameDocument = true; }")  # gone if the page reloads

    page = console_page
    await admin_login(page, g, "sec")
    await page.click("#tabs button[data-tab='rules']")
    await page.fill("#rule-form [name=subject]", "dept:city")
    await page.fill("#rule-form [name=target]", "cam:cam-xz")
    await page.select_option("#rule-form [name=action]", "view_live")
    await page.fill("#rule-form [name=reason]", "城管 needs the square")
    await page.click("#rule-form button[type=submit]")
    # The preview says what the grant does before anything is stored.
    preview = page.locator("#preview")
    await expect(preview).to_be_visible()
    live = preview.locator(".effect-action[data-action='view_live'] .effect-gain")
    await expect(live).to_have_text("【看实时视频】此变更使 城管 的 1 名用户多看到 1 路摄像机")
    await expect(preview.locator(".diff-add")).to_have_text("+ 允许 dept:city → cam:cam-xz · 看实时视频")
    assert (await g.client.get("/api/admin/rules?subject=dept:city", headers=admin)).json() == []
    await page.click("#lang")  # the same preview in English
    await page.click("#rule-form button[type=submit]")
    await expect(live).to_have_text("[live video] This change lets 1 users of 城管 see 1 more cameras")
    await page.click("#lang")
    await page.click("#rule-form button[type=submit]")
    await expect(live).to_contain_text("城管 的 1 名用户")
    await page.click("#preview-confirm")
    await expect(preview).to_be_hidden()
    await expect(page.locator("#flash")).to_contain_text("已保存")
    await expect(page.locator("#rule-table tr", has_text="dept:city")).to_have_count(1)

    # The operator's list shows the camera without a reload (policy.changed over SSE).
    await expect(op_page.locator("#camera-list li[data-camera='cam-xz']")).to_be_visible(timeout=10_000)
    await expect(op_page.locator("#count")).to_have_text("共 1 路可见摄像机")
    assert await op_page.evaluate("() => window.sameDocument === true")

    # Who can view cam-xz now, and why; what op-city can view.
    await page.click("#tabs button[data-tab='explain']")
    await page.fill("#explain-camera-form [name=camera_id]", "cam-xz")
    await page.click("#explain-camera-form button[type=submit]")
    who = page.locator("#explain-camera-result .who-can li")
    await expect(who.filter(has_text="op-city")).to_contain_text("dept:city → cam:cam-xz")
    await expect(who.filter(has_text="op-other")).to_have_count(0)
    await page.fill("#explain-camera-form [name=camera_id]", "cam-none")
    await page.click("#explain-camera-form button[type=submit]")
    await expect(page.locator("#explain-camera-form [data-field='camera_id'] .field-error")).to_contain_text("cam-none")
    op_id = await user_id(g, admin, "op-city")
    await page.select_option("#explain-user-form [name=user_id]", str(op_id))
    await page.click("#explain-user-form button[type=submit]")
    await expect(page.locator("#explain-user-result .total")).to_have_text("共可查看 1 路摄像机")
    await expect(page.locator("#explain-user-result tr[data-camera='cam-xz']")).to_contain_text("dept:city")

    # Rollback to the revision before the grant: the preview shows the loss, then the operator loses it live.
    await page.click("#tabs button[data-tab='history']")
    newest = page.locator("#revision-list > li").first
    await expect(newest).to_contain_text("dept:city → cam:cam-xz")
    before = int(await page.locator("#revision-list > li").nth(1).get_attribute("data-revision"))
    await page.click(f"#revision-list > li[data-revision='{before}'] button")
    lose = preview.locator(".effect-action[data-action='view_live'] .effect-lose")
    await expect(lose).to_have_text("【看实时视频】此变更使 城管 的 1 名用户少看到 1 路摄像机")
    await expect(preview.locator(".diff-remove")).to_have_text("− 允许 dept:city → cam:cam-xz · 看实时视频")
    await page.click("#preview-confirm")
    await expect(preview).to_be_hidden()
    await expect(page.locator("#revision-list > li").first).to_contain_text(f"回滚到修订 {before}")
    await expect(op_page.locator("#camera-list li[data-camera]")).to_have_count(0, timeout=10_000)
    await expect(op_page.locator("#count")).to_have_text("共 0 路可见摄像机")
    assert await op_page.evaluate("() => window.sameDocument === true")
    assert (await g.client.get("/api/admin/rules?subject=dept:city", headers=admin)).json() == []
    assert op_problems == []


async def test_an_auditor_reads_filters_and_exports_but_cannot_change_anything(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    sec = await setup_city(g, admin, "op-city")
    r = await g.client.post(
        "/api/admin/rules", json={"subject": "dept:city", "target": "cam:cam-qb", "action": "view_live"}, headers=sec
    )
    assert r.status_code == 201, r.text
    await g.add_user("aud", Role.auditor)
    await g.client.post("/api/auth/token", data={"username": "op-city", "password": "wrong password"})
    page = console_page
    await admin_login(page, g, "aud")
    await expect(page.locator("#read-only")).to_be_visible()
    # Nothing that changes the policy exists on the page.
    for sel in (
        "#dept-form",
        "#user-form",
        "#user-patch-form",
        "#membership-form",
        "#group-form",
        "#rule-form",
        "#route-form",
    ):
        await expect(page.locator(sel)).to_have_count(0)
    await expect(page.locator("#tabs button[data-tab='routes']")).to_be_hidden()
    await page.click("#tabs button[data-tab='rules']")
    await expect(page.locator("#rule-table tr", has_text="dept:city")).to_have_count(1)
    await expect(page.locator("#rule-table button")).to_have_count(0)
    await page.click("#tabs button[data-tab='history']")
    await expect(page.locator("#revision-list > li").first).to_contain_text("dept:city → cam:cam-qb")
    await expect(page.locator("#revision-list button")).to_have_count(0)  # no rollback

    # Explain, read-only: a deny rule blocks op-city from cam-qb, and the page says which rules.
    deny = {"subject": "*", "target": "cam:cam-qb", "action": "view_live", "effect": "deny"}
    assert (await g.client.post("/api/admin/rules", json=deny, headers=sec)).status_code == 201
    await page.click("#tabs button[data-tab='explain']")
    await page.fill("#explain-camera-form [name=camera_id]", "cam-qb")
    await page.click("#explain-camera-form button[type=submit]")
    blocked = page.locator("#explain-camera-result .blocked li", has_text="op-city")
    await expect(blocked).to_contain_text("被禁止规则覆盖")
    await expect(blocked).to_contain_text("禁止 * → cam:cam-qb")
    await expect(page.locator("#explain-camera-result .who-can li", has_text="op-city")).to_have_count(0)

    # The audit log: filter by kind, a bad filter named next to its field, the CSV of what is shown.
    await page.click("#tabs button[data-tab='audit']")
    await expect(page.locator("#audit-table tbody tr").first).to_be_visible()
    await page.fill("#audit-form [name=user_id]", "abc")
    await page.click("#audit-form button[type=submit]")
    await expect(page.locator("#audit-form [data-field='user_id'] .field-error")).to_be_visible()
    await page.fill("#audit-form [name=user_id]", "")
    await page.fill("#audit-form [name=kind]", "login_failed")
    await page.click("#audit-form button[type=submit]")
    await expect(page.locator("#audit-form .field-error")).to_have_count(0)
    rows = page.locator("#audit-table tbody tr")
    await expect(rows).to_have_count(1)
    await expect(rows.first).to_have_attribute("data-kind", "login_failed")
    await expect(rows.first).to_contain_text("op-city")
    await expect(rows.first).to_contain_text("登录失败")  # the kind by its name, not login_failed
    assert await page.locator("#audit-kinds option[value='recording.export']").get_attribute("label") == "导出录像"
    async with page.expect_download() as info:
        await page.click("#audit-export")
    download = await info.value
    text = Path(await download.path()).read_text(encoding="utf-8")
    exported = list(csv.DictReader(io.StringIO(text)))
    assert [(e["kind"], e["username"]) for e in exported] == [("login_failed", "op-city")]
    await page.click("#audit-verify")
    await expect(page.locator("#audit-verify-result")).to_contain_text("哈希链完整")
    # From the operator console an auditor finds the way here.
    await page.goto(g.base_url + "/")
    await expect(page.locator("#admin-link")).to_be_visible()
    await page.click("#admin-link")
    await expect(page.locator("#read-only")).to_be_visible()
    # Logging out leaves nothing of the auditor's page: a security admin logging in next gets the editors' forms.
    await page.goto(g.base_url + "/admin")
    await page.click("#logout")
    await expect(page.locator("#login-view")).to_be_visible()
    await expect(page.locator("#rule-table tr")).to_have_count(0)
    await admin_login(page, g, "sec")
    await expect(page.locator("#rule-form")).to_have_count(1)
    await expect(page.locator("#read-only")).to_be_hidden()
    # A login ended elsewhere (revoked by an admin) returns the page to the login form, saying why.
    tokens = (await g.client.get("/api/auth/tokens?all_users=true", headers=admin)).json()
    sec_id = await user_id(g, admin, "sec")
    browser_login = max(
        (t for t in tokens if t["user_id"] == sec_id and t["kind"] == "session" and not t["revoked"]),
        key=lambda t: t["id"],
    )
    assert (await g.client.delete(f"/api/auth/tokens/{browser_login['id']}", headers=admin)).status_code == 200
    await expect(page.locator("#login-view")).to_be_visible(timeout=15_000)
    await expect(page.locator("#login-error")).to_have_text("登录已失效，请重新登录")
    # The server refuses an auditor's change whatever the page shows.
    aud = await g.add_user("aud2", Role.auditor)
    r = await g.client.post(
        "/api/admin/rules", json={"subject": "dept:city", "target": "cam:cam-xz", "action": "view_live"}, headers=aud
    )
    assert r.status_code == 403


async def test_groups_memberships_routing_and_users_through_the_console(
    web_gateway: tuple[LiveGateway, Any], console_page: Any
) -> None:
    g, admin = web_gateway
    await setup_city(g, admin, "op-city")
    await add_operator(g, admin, "op-police")
    page = console_page
    await admin_login(page, g, "sec")
    preview = page.locator("#preview")

    # A dynamic group (by sub-district) and a grant on it; then a static group with a camera that is not there.
    await page.click("#tabs button[data-tab='groups']")
    await page.fill("#group-form [name=id]", "qibao-all")
    await page.fill("#group-form [name=name]", "七宝全部")
    await page.select_option("#group-form [name=type]", "dynamic")
    await expect(page.locator("#group-form [data-field='cameras']")).to_be_hidden()
    # Sub-districts, stations, tags, departments and cameras are chosen from lists, not typed as ids.
    await expect(page.locator("#area-options option[value='七宝镇']")).to_have_count(1)
    await expect(page.locator("#dept-options option[value='city']")).to_have_text("城管")
    await expect(page.locator("#camera-options option[value='cam-qb']")).to_have_count(1)
    await expect(page.locator("#target-options option[value='cam:cam-qb']")).to_have_count(1)
    area_picker = page.locator("#group-form input.picker[data-into='f_area']")
    for _ in range(2):  # chosen twice, listed once
        await area_picker.fill("七宝镇")
        await area_picker.dispatch_event("change")
    await expect(area_picker).to_have_value("")
    await expect(page.locator("#group-form [name=f_area]")).to_have_value("七宝镇")
    await page.fill("#group-form [name=f_kind]", "fixed, bus")
    await page.click("#group-form button[type=submit]")
    await expect(preview.locator(".effect-none")).to_be_visible()  # nobody has a rule on it yet
    await expect(preview.locator(".diff-add")).to_contain_text(
        'group:qibao-all 七宝全部 {"area":["七宝镇"],"kind":["fixed","bus"]}'
    )
    await page.click("#preview-confirm")
    await expect(page.locator("#group-table tr[data-group='qibao-all']")).to_contain_text("2")  # cam-qb, cam-265
    await page.click("#group-table tr[data-group='qibao-all'] button:has-text('查看成员')")
    await expect(page.locator("#group-members")).to_have_text("七宝全部 (2): cam-265, cam-qb")
    await page.fill("#group-form [name=id]", "bad-group")
    await page.fill("#group-form [name=name]", "坏分组")
    await page.select_option("#group-form [name=type]", "dynamic")
    await page.click("#group-form button[type=submit]")  # a dynamic group with no attribute at all
    await expect(page.locator("#group-form [data-field-error]")).to_contain_text("filter")
    await page.click("#group-form button[type=reset]")

    # op-police joins 城管 through the console: the preview names what the membership brings.
    r = await g.client.post(
        "/api/admin/rules",
        json={"subject": "dept:city", "target": "group:qibao-all", "action": "view_live"},
        headers=admin,
    )
    assert r.status_code == 201
    await expect(page.locator("#flash")).to_have_text("策略已被他人修改，列表已刷新")  # another admin's change arrived
    await page.click("#tabs button[data-tab='users']")
    pid = await user_id(g, admin, "op-police")
    await page.click(f"#user-table tr[data-user='{pid}'] button")
    await page.select_option("#membership-form [name=department_id]", "city")
    await page.click("#membership-form button[type=submit]")
    line = preview.locator(".effect-action[data-action='view_live'] .effect-gain")
    await expect(line).to_have_text("【看实时视频】此变更使 城管 的 1 名用户多看到 2 路摄像机")
    await page.click("#preview-confirm")
    await expect(page.locator(f"#user-table tr[data-user='{pid}']")).to_contain_text("城管 (成员)")
    await expect(page.locator("#membership-list li[data-dept='city']")).to_be_visible()
    r = await g.client.get("/api/cameras", headers=await login_headers(g, "op-police"))
    assert sorted(c["id"] for c in r.json()["items"]) == ["cam-265", "cam-qb"]

    # Deactivating a user from the console.
    await page.uncheck("#user-patch-form [name=active]")
    await page.fill("#user-patch-form [name=reason]", "离职")
    await page.click("#user-patch-form button[type=submit]")
    lose = preview.locator(".effect-action[data-action='view_live'] .effect-lose")
    await expect(lose).to_have_text("【看实时视频】此变更使 城管 的 1 名用户少看到 2 路摄像机")
    await page.click("#preview-confirm")
    await expect(page.locator(f"#user-table tr[data-user='{pid}']")).to_contain_text("已停用")
    r = await g.client.post("/api/auth/token", data={"username": "op-police", "password": PASSWORD})
    assert r.status_code == 401

    # Alarm routing: a malformed duty window is refused next to its field; a good route is listed.
    await page.click("#tabs button[data-tab='routes']")
    await expect(page.locator("#route-table tr[data-route='settings']").first).to_be_visible()
    await page.fill("#route-form [name=area]", "七宝镇")
    await page.fill("#route-form [name=type]", "panic")
    await page.fill("#route-form [name=departments]", "city")
    await page.fill("#route-form [name=hours]", "25:00-08:00")
    await page.click("#route-form button[type=submit]")
    await expect(page.locator("#route-form [data-field='hours'] .field-error")).to_be_visible()
    await page.fill("#route-form [name=hours]", "20:00-08:00")
    await page.click("#route-form button[type=submit]")
    await expect(page.locator("#route-table tr", has_text="20:00-08:00")).to_contain_text("城管")
    await page.fill("#route-form [name=departments]", "nowhere")
    await page.click("#route-form button[type=submit]")
    await expect(page.locator("#route-form [data-field='departments'] .field-error")).to_contain_text("nowhere")


async def login_headers(g: LiveGateway, user: str) -> dict[str, str]:
    r = await g.client.post("/api/auth/token", data={"username": user, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}
