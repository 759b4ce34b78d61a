"""The PTZ rules of gateway/policy/ptz.py: unit priorities, a user's rank, actions, lock admission."""

from __future__ import annotations

import time
from dataclasses import dataclass

from acl.identity import Subject
from acl.models import Role
from gateway.policy.ptz import action_for, lock_admits, rank_of, unit_priority
from gateway.ptz.holds import PtzLock
from gateway.ptz.settings import PtzSettings


@dataclass
class Unit:
    id: str
    name: str
    level: str
    ptz_priority: int | None = None


UNITS = {
    "district": Unit("district", "区联动中心", "district"),
    "qibao": Unit("qibao", "七宝镇分中心", "subdistrict"),
    "police": Unit("police", "公安", "department"),
    "transport": Unit("transport", "交通委", "department"),
    "jt": Unit("jt", "九亭站", "station", ptz_priority=120),
}


def who(*depts: str) -> Subject:
    return Subject(1, "u", Role.operator, frozenset(depts))


def test_unit_priorities_own_then_by_id_then_by_level() -> None:
    s = PtzSettings()
    assert [unit_priority(UNITS[u], s) for u in ("district", "qibao", "police", "transport", "jt")] == [
        100,
        50,
        100,  # police: ptz.unit_priority
        20,
        120,  # its own
    ]
    custom = PtzSettings(level_priority={"department": 70}, unit_priority={})
    assert unit_priority(UNITS["police"], custom) == 70 and unit_priority(UNITS["district"], custom) == 0


def test_rank_is_the_highest_unit_and_stable_on_ties() -> None:
    s = PtzSettings()
    r = rank_of(who("transport", "qibao"), UNITS, s)
    assert (r.priority, r.unit, r.unit_name) == (50, "qibao", "七宝镇分中心")
    assert rank_of(who("police", "district"), UNITS, s).unit == "district"  # 100 each: the first id
    assert rank_of(who("jt", "police"), UNITS, s).unit == "jt"
    assert rank_of(who(), UNITS, s).priority == 0
    assert rank_of(who("gone"), UNITS, s).priority == 0  # a unit deleted meanwhile ranks nothing


def test_actions_and_locks() -> None:
    assert action_for("set_preset") == "ptz_preset"
    assert {action_for(op) for op in ("continuous", "stop", "goto_preset", "home", "")} == {"ptz"}
    lock = PtzLock("inc-1", ("police", "qibao"), time.time() + 60)
    assert lock_admits(who("qibao"), lock) and lock_admits(who("transport", "police"), lock)
    assert not lock_admits(who("transport"), lock)
    admin = Subject(2, "root", Role.admin, frozenset())
    assert not lock_admits(admin, lock)  # a lock is for the incident's handlers, not for rank
