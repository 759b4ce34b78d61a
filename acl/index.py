"""The compiled viewing policy: bitsets over the camera inventory, answering in microseconds.

Casbin stores and explains the policy; answering with Casbin's enforcer scans every rule (about
5 us a rule, so ~17 ms per check at district scale). Here every group and camera target becomes a
Python-int bitset over the camera list, every subject (department, role) gets its rules, and a
user's visible set is the OR of their allow rules minus the OR of the deny rules that apply,
cached per (subjects, action) until the policy, the inventory, a vehicle position or the clock
(a validity window opening or closing) changes it. Answers are :class:`CameraSet` views over the
bits: a few kilobytes each, where materialised sets of 20,000 ids cost a megabyte.

Semantics (identical to the Casbin model in :mod:`acl.casbin_model`):
- actions are ordered ``view_snapshot`` < ``view_live`` < ``ptz`` (steer) < ``ptz_preset`` (store
  presets) < ``record`` < ``playback`` < ``export`` < ``manage``; an allow rule for an action
  grants it and every lower one, a deny rule blocks it and every higher one;
- a rule applies to a user when its subject is one of the user's subjects (``dept:<id>``,
  ``role:<name>``) or ``*``, and its validity window contains the current time;
- deny overrides allow; nothing is allowed unless a rule allows it.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "ACTION_LEVEL",
    "FOREIGN_TRUCKS_OUTSIDE",
    "CameraAttrs",
    "CameraSet",
    "Rule",
    "VisibilityIndex",
    "parse_window",
]

# Steering sits above watching (who may steer may watch live; who may watch may not steer), and the
# recording actions above steering: who may view live may not necessarily steer, record, play back or
# export. The order is a ladder, so a grant of ``record`` also lets a unit steer: independent rights
# need a non-linear action set (not done yet).
ACTION_LEVEL = {
    "view_snapshot": 1,
    "view_live": 2,
    "ptz": 3,
    "ptz_preset": 4,
    "record": 5,
    "playback": 6,
    "export": 7,
    "manage": 8,
}
# A computed group: cameras on trucks registered outside the district that are not (freshly) inside it.
FOREIGN_TRUCKS_OUTSIDE = "@foreign-trucks-outside"
DYNAMIC_KEYS = ("area", "station", "kind", "tag", "department")


@dataclass(frozen=True, slots=True)
class CameraAttrs:
    """What dynamic groups and the location rule look at."""

    id: str
    area: str = ""
    kind: str = "fixed"
    department: str = ""
    tags: tuple[str, ...] = ()
    vehicle_id: str | None = None
    station: str = ""  # the neighbourhood station (居村委) within ``area``


@dataclass(frozen=True, slots=True)
class Rule:
    """A grant or deny rule (one Casbin ``p`` line)."""

    sub: str  # dept:<id> | role:<name> | *
    obj: str  # cam:<id> | group:<id>
    act: str
    eft: str = "allow"  # allow | deny
    nbf: float = -math.inf
    exp: float = math.inf
    tag: str = ""  # e.g. incident:<id>
    rule_id: int | None = None

    def valid_at(self, t: float) -> bool:
        """The validity window contains ``t``."""
        return self.nbf <= t < self.exp


def parse_window(window: str) -> tuple[float, float]:
    """``"nbf..exp"`` (epoch seconds, either side may be empty) to a (nbf, exp) pair."""
    if not window:
        return -math.inf, math.inf
    lo, _, hi = window.partition("..")
    return (float(lo) if lo else -math.inf, float(hi) if hi else math.inf)


class CameraSet(AbstractSet[str]):
    """A read-only set of camera ids backed by a bitset over the index's camera list.

    Membership is a byte look-up, ``len`` a popcount; iterating yields ids in camera-list order
    (sorted by id). Set operators return plain frozensets.
    """

    __slots__ = ("_ids", "_len", "_mask", "_pos", "bits")

    def __init__(self, bits: int, pos: Mapping[str, int], ids: np.ndarray) -> None:
        self.bits = bits
        self._pos = pos
        self._ids = ids
        self._mask = bits.to_bytes((len(ids) + 7) // 8 or 1, "little")
        self._len = bits.bit_count()

    def __contains__(self, camera_id: object) -> bool:
        i = self._pos.get(camera_id)  # type: ignore[call-overload]
        return i is not None and (self._mask[i >> 3] >> (i & 7)) & 1 == 1

    def __len__(self) -> int:
        return self._len

    def __iter__(self) -> Iterator[str]:
        if not self._len:
            return iter(())
        flags = np.unpackbits(np.frombuffer(self._mask, dtype=np.uint8), bitorder="little")[: len(self._ids)]
        return iter(self._ids[np.flatnonzero(flags)].tolist())

    def __repr__(self) -> str:
        return f"CameraSet({self._len} cameras)"

    @classmethod
    def _from_iterable(cls, it: Iterable[Any]) -> frozenset[Any]:
        return frozenset(it)


@dataclass
class _Entry:
    version: int
    since: float  # the answer holds for since <= now < expires (the windows' nearest edges)
    expires: float
    view: CameraSet


@dataclass
class VisibilityIndex:
    """Answers ``visible`` / ``allowed`` for a set of subjects; rebuilt or patched on change."""

    cameras: Sequence[CameraAttrs]
    rules: Sequence[Rule]
    static_groups: Mapping[str, Iterable[str]]
    dynamic_groups: Mapping[str, Mapping[str, Sequence[str]]]
    computed_groups: dict[str, set[str]] = field(default_factory=dict)
    version: int = 0
    _pos: dict[str, int] = field(init=False, default_factory=dict)
    _ids: np.ndarray = field(init=False)
    _attr: dict[tuple[str, str], int] = field(init=False, default_factory=dict)
    _group_bits: dict[str, int] = field(init=False, default_factory=dict)
    _by_subject: dict[str, list[Rule]] = field(init=False, default_factory=dict)
    _cache: dict[tuple[frozenset[str], int], _Entry] = field(init=False, default_factory=dict)
    _all: CameraSet = field(init=False)

    def __post_init__(self) -> None:
        self._pos = {c.id: i for i, c in enumerate(self.cameras)}
        self._ids = np.array([c.id for c in self.cameras], dtype=object)
        attr: dict[tuple[str, str], int] = {}
        for i, c in enumerate(self.cameras):
            bit = 1 << i
            for key, val in (("area", c.area), ("station", c.station), ("kind", c.kind), ("department", c.department)):
                attr[(key, val)] = attr.get((key, val), 0) | bit
            for t in c.tags:
                attr[("tag", t)] = attr.get(("tag", t), 0) | bit
        self._attr = attr
        for gid, members in self.static_groups.items():
            self._group_bits[gid] = self._bits_of(members)
        for gid, flt in self.dynamic_groups.items():
            self._group_bits[gid] = self._filter_bits(flt)
        for gid, members in self.computed_groups.items():
            self._group_bits[gid] = self._bits_of(members)
        for r in self.rules:
            self._by_subject.setdefault(r.sub, []).append(r)
        self._all = self._view((1 << len(self.cameras)) - 1)

    def _view(self, bits: int) -> CameraSet:
        return CameraSet(bits, self._pos, self._ids)

    def _bits_of(self, camera_ids: Iterable[str]) -> int:
        bits = 0
        for cid in camera_ids:
            i = self._pos.get(cid)
            if i is not None:
                bits |= 1 << i
        return bits

    def _bits_at(self, positions: list[int]) -> int:
        if not positions:
            return 0
        buf = bytearray((len(self.cameras) + 7) // 8)
        for i in positions:
            buf[i >> 3] |= 1 << (i & 7)
        return int.from_bytes(buf, "little")

    def _filter_bits(self, flt: Mapping[str, Sequence[str]]) -> int:
        """Cameras matching a dynamic filter: every given attribute has one of its values."""
        if not flt:
            return 0
        bits = (1 << len(self.cameras)) - 1
        for key, values in flt.items():
            any_of = 0
            for v in values:
                any_of |= self._attr.get((key, v), 0)
            bits &= any_of
        return bits

    def target_bits(self, obj: str) -> int:
        """Cameras a rule object names."""
        kind, _, name = obj.partition(":")
        if kind == "cam":
            i = self._pos.get(name)
            return 0 if i is None else 1 << i
        if kind == "group":
            return self._group_bits.get(name, 0)
        return 0

    def members(self, obj: str) -> CameraSet:
        """The cameras a rule object (``cam:<id>`` or ``group:<id>``) names now."""
        return self._view(self.target_bits(obj))

    def all(self) -> CameraSet:
        """Every camera."""
        return self._all

    def view(self, bits: int) -> CameraSet:
        """The cameras of a bitset over this index's camera list."""
        return self._view(bits)

    def fork(self) -> VisibilityIndex:
        """A copy to patch without touching this one (sharing the immutable camera tables)."""
        twin = copy.copy(self)
        twin._group_bits = dict(self._group_bits)
        twin._by_subject = {k: list(v) for k, v in self._by_subject.items()}
        twin.computed_groups = {k: set(v) for k, v in self.computed_groups.items()}
        twin._cache = dict(self._cache)  # entries carry the version they hold for; a patch drops them
        return twin

    # -- patching --------------------------------------------------------------------------
    def set_computed_group(self, gid: str, camera_ids: Iterable[str]) -> None:
        """Replace a computed group's members (the location rule's trucks) and invalidate answers."""
        self.computed_groups[gid] = set(camera_ids)
        self._group_bits[gid] = self._bits_of(self.computed_groups[gid])
        self.invalidate()

    def set_group(
        self, gid: str, *, members: Iterable[str] | None = None, flt: Mapping[str, Sequence[str]] | None = None
    ) -> None:
        """Define or redefine a static (``members``) or dynamic (``flt``) group."""
        self._group_bits[gid] = self._filter_bits(flt) if flt is not None else self._bits_of(members or ())
        self.invalidate()

    def drop_group(self, gid: str) -> None:
        """Forget a group (rules naming it then match nothing)."""
        self._group_bits.pop(gid, None)
        self.invalidate()

    def add_member(self, gid: str, camera_id: str) -> None:
        """Add one camera to a static group."""
        self._group_bits[gid] = self._group_bits.get(gid, 0) | self.target_bits(f"cam:{camera_id}")
        self.invalidate()

    def remove_member(self, gid: str, camera_id: str) -> None:
        """Take one camera out of a static group."""
        self._group_bits[gid] = self._group_bits.get(gid, 0) & ~self.target_bits(f"cam:{camera_id}")
        self.invalidate()

    def add_rule(self, rule: Rule) -> None:
        """Add one rule in place."""
        self._by_subject.setdefault(rule.sub, []).append(rule)
        self.invalidate()

    def remove_rule(self, rule_id: int) -> bool:
        """Remove one rule by id in place; False when unknown."""
        for rules in self._by_subject.values():
            for i, r in enumerate(rules):
                if r.rule_id == rule_id:
                    del rules[i]
                    self.invalidate()
                    return True
        return False

    def invalidate(self) -> None:
        """Forget cached answers."""
        self.version += 1
        self._cache.clear()

    # -- answering -------------------------------------------------------------------------
    def _entry(self, subjects: frozenset[str], level: int, now: float) -> _Entry:
        key = (subjects, level)
        e = self._cache.get(key)
        if e is not None and e.version == self.version and e.since <= now < e.expires:
            return e
        allow = deny = 0
        allow_at: list[int] = []  # single-camera targets: set as bits once, not one big-int OR each
        deny_at: list[int] = []
        since, expires = -math.inf, math.inf
        for sub in (*subjects, "*"):
            for r in self._by_subject.get(sub, ()):
                lvl = ACTION_LEVEL.get(r.act, 99)
                if r.eft == "allow" and lvl < level:
                    continue
                if r.eft == "deny" and lvl > level:
                    continue
                if r.nbf > now:
                    expires = min(expires, r.nbf)  # the answer changes when the window opens
                    continue
                if r.exp <= now:
                    since = max(since, r.exp)
                    continue
                since = max(since, r.nbf)
                expires = min(expires, r.exp)
                if r.obj.startswith("cam:"):
                    i = self._pos.get(r.obj[4:])
                    if i is not None:
                        (allow_at if r.eft == "allow" else deny_at).append(i)
                elif r.eft == "allow":
                    allow |= self.target_bits(r.obj)
                else:
                    deny |= self.target_bits(r.obj)
        allow |= self._bits_at(allow_at)
        deny |= self._bits_at(deny_at)
        e = _Entry(self.version, since, expires, self._view(allow & ~deny))
        if len(self._cache) > 20_000:  # ~5 KB an entry; distinct subject sets are far fewer than users
            self._cache.clear()
        self._cache[key] = e
        return e

    def visible(self, subjects: frozenset[str], action: str, now: float) -> CameraSet:
        """Camera ids the subjects may ``action`` at ``now``."""
        level = ACTION_LEVEL.get(action)
        if level is None:
            return self._view(0)
        return self._entry(subjects, level, now).view

    def allowed(self, subjects: frozenset[str], action: str, camera_id: str, now: float) -> bool:
        """Whether the subjects may ``action`` the camera at ``now``."""
        level = ACTION_LEVEL.get(action)
        return level is not None and camera_id in self._entry(subjects, level, now).view

    def rules_granting(self, subjects: frozenset[str], action: str, camera_id: str, now: float) -> list[Rule]:
        """The rules that decide this question (allows that match and denies that match)."""
        level = ACTION_LEVEL.get(action, 99)
        bit = self.target_bits(f"cam:{camera_id}")
        out = []
        for sub in (*sorted(subjects), "*"):
            for r in self._by_subject.get(sub, ()):
                lvl = ACTION_LEVEL.get(r.act, 99)
                applies = (r.eft == "allow" and lvl >= level) or (r.eft == "deny" and lvl <= level)
                if applies and r.valid_at(now) and self.target_bits(r.obj) & bit:
                    out.append(r)
        return out

    def subjects_with_rules(self) -> list[str]:
        """Every subject that has at least one rule."""
        return sorted(self._by_subject)
