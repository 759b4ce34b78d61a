"""Answers from an installed policy, without a database: keys, admins, explanations, installs."""

from __future__ import annotations

from acl.decider import AccessDecider, rule_dict
from acl.identity import Subject
from acl.index import CameraAttrs, Rule, VisibilityIndex
from acl.models import Role
from acl.policy import PolicyState

CAMERAS = [CameraAttrs("a", area="north"), CameraAttrs("b", area="south")]
RULES = [
    Rule("dept:police", "cam:a", "view_live", rule_id=1),
    Rule("dept:police", "cam:b", "view_live", rule_id=2),
    Rule("role:trainee", "cam:b", "view_live", "deny", rule_id=3),
]


def decider() -> AccessDecider:
    st = PolicyState({}, {7: [("police", "trainee")]}, {7: "operator", 8: "operator"}, {}, {}, list(RULES))
    d = AccessDecider()
    d.install(
        st, VisibilityIndex(CAMERAS, RULES, {}, {}), {7: frozenset({"role:operator", "dept:police", "role:trainee"})}
    )
    return d


def test_answers_come_from_the_installed_policy() -> None:
    d = decider()
    pol = d.subject_for(7, "pol", "operator")
    assert pol.departments == frozenset({"police"})
    assert d.authorize(pol, "view_live", "a") and not d.authorize(pol, "view_live", "b")
    assert set(d.visible_cameras(pol, "view_live")) == {"a"}
    stranger = Subject(user_id=99, username="x", role=Role.operator, departments=frozenset())
    assert not d.authorize(stranger, "view_snapshot", "a")  # deny by default
    admin = Subject(user_id=1, username="root", role=Role.admin, departments=frozenset())
    assert d.authorize(admin, "manage", "b") and set(d.visible_cameras(admin, "manage")) == {"a", "b"}


def test_a_login_with_another_system_role_than_the_policy_keeps_its_memberships() -> None:
    d = decider()
    # The CLI made user 7 an auditor; the loaded policy still says operator: the login is trusted.
    as_auditor = Subject(user_id=7, username="pol", role=Role.auditor, departments=frozenset())
    assert d.keys(as_auditor) == frozenset({"role:auditor", "dept:police", "role:trainee"})


def test_explain_and_who_can_name_the_rules() -> None:
    d = decider()
    pol = d.subject_for(7, "pol", "operator")
    why = d.explain(pol, "view_live", "b")
    assert why["allowed"] is False and why["because"] == "a deny rule overrides"
    assert {r["id"] for r in why["rules"]} == {2, 3}
    allowed, blocked = d.who_can(
        "b", "view_live", [(7, "pol", "operator"), (8, "op", "operator"), (1, "root", "admin")]
    )
    assert [u["username"] for u in allowed] == ["root"] and [u["username"] for u in blocked] == ["pol"]
    assert rule_dict(RULES[0])["not_after"] is None


async def test_departments_of_reads_memory() -> None:
    from acl.models import User

    assert await decider().departments_of(User(id=7, username="pol", role=Role.operator)) == frozenset({"police"})
