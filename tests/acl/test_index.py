"""The compiled index: bitset views, action levels, windows and group patches."""

from __future__ import annotations

import math

from acl.index import CameraAttrs, CameraSet, Rule, VisibilityIndex

CAMS = [
    CameraAttrs("a", area="七宝镇", kind="fixed", department="police", tags=("路口",)),
    CameraAttrs("b", area="七宝镇", kind="bus", department="transport"),
    CameraAttrs("c", area="莘庄镇", kind="truck", department="emergency", tags=("路口", "学校")),
    *(CameraAttrs(f"x{i:03d}", area="莘庄镇") for i in range(200)),
]
DEPT = frozenset({"dept:d", "role:operator"})


def index(*rules: Rule) -> VisibilityIndex:
    return VisibilityIndex(
        CAMS, list(rules), {"s": ["b", "x007", "ghost"]}, {"crossings-qb": {"tag": ["路口"], "area": ["七宝镇"]}}
    )


def test_camera_set_is_a_cheap_read_only_set() -> None:
    idx = index(Rule("dept:d", "group:s", "view_live", rule_id=1))
    v = idx.visible(DEPT, "view_live", 0)
    assert isinstance(v, CameraSet)
    assert len(v) == 2 and "b" in v and "x007" in v and "a" not in v and "ghost" not in v and 5 not in v
    assert list(v) == ["b", "x007"]  # camera-list order
    assert v == {"b", "x007"} and v & {"b", "z"} == frozenset({"b"}) and v | {"z"} == {"b", "x007", "z"}
    assert set(idx.all()) == {c.id for c in CAMS}
    empty = idx.visible(DEPT, "manage", 0)
    assert len(empty) == 0 and list(empty) == [] and "b" not in empty


def test_action_levels_and_deny_override() -> None:
    idx = index(
        Rule("dept:d", "group:crossings-qb", "manage", rule_id=1),
        Rule("*", "cam:c", "view_snapshot", rule_id=2),
        Rule("role:operator", "cam:a", "view_live", "deny", rule_id=3),
    )
    assert set(idx.visible(DEPT, "view_snapshot", 0)) == {"a", "c"}  # manage implies view_snapshot
    assert set(idx.visible(DEPT, "view_live", 0)) == set()  # a deny at view_live blocks it and manage,
    assert set(idx.visible(DEPT, "manage", 0)) == set()
    assert idx.allowed(frozenset({"dept:d"}), "manage", "a", 0)  # but only for the subject it names
    assert not idx.allowed(DEPT, "view_live", "c", 0)  # a snapshot grant gives no live video
    assert not idx.allowed(DEPT, "fly", "a", 0)


def test_windows_hold_both_ways_in_time() -> None:
    idx = index(
        Rule("dept:d", "cam:a", "view_live", nbf=100, exp=200, rule_id=1),
        Rule("dept:d", "cam:b", "view_live", exp=150, rule_id=2),
    )
    seen = [sorted(idx.visible(DEPT, "view_live", t)) for t in (50, 120, 160, 250, 120, 50)]
    assert seen == [["b"], ["a", "b"], ["a"], [], ["a", "b"], ["b"]]
    assert Rule("s", "cam:a", "view_live", nbf=-math.inf).valid_at(0)


def test_group_patches() -> None:
    idx = index(Rule("dept:d", "group:s", "view_live", rule_id=1), Rule("dept:d", "group:dyn", "view_live", rule_id=2))
    assert set(idx.visible(DEPT, "view_live", 0)) == {"b", "x007"}
    idx.add_member("s", "a")
    idx.remove_member("s", "b")
    assert set(idx.visible(DEPT, "view_live", 0)) == {"a", "x007"}
    idx.set_group("dyn", flt={"kind": ["truck", "bus"]})
    assert set(idx.visible(DEPT, "view_live", 0)) == {"a", "b", "c", "x007"}
    idx.drop_group("s")
    idx.set_computed_group("dyn", ["c"])
    assert set(idx.visible(DEPT, "view_live", 0)) == {"c"}
    assert idx.remove_rule(2) and not idx.remove_rule(2)
    assert set(idx.visible(DEPT, "view_live", 0)) == set()
