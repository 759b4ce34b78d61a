"""The effect of a proposed policy change on who sees what, computed without storing it.

The change runs as a dry run (:meth:`acl.policy.PolicyStore.dry_run`: every check, then rolled
back), its diff is applied to a copy of the compiled state, and each user's visible cameras before
and after are compared. Users share subject sets, so each distinct (before, after) pair is compared
once; at district scale (20k cameras, 5k users) that is a few hundred bitset operations.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from acl.index import VisibilityIndex

__all__ = ["ActionEffect", "DepartmentEffect", "UserEffect", "visibility_effect"]

SAMPLE = 5


@dataclass(frozen=True, slots=True)
class UserEffect:
    """One user's gain and loss."""

    user_id: int
    gained: int
    lost: int
    gained_sample: tuple[str, ...]
    lost_sample: tuple[str, ...]


@dataclass
class DepartmentEffect:
    """The users of one department (after the change, or before it for those who leave) that gain or lose."""

    department_id: str
    users_gaining: int = 0
    users_losing: int = 0
    gained_bits: int = 0
    lost_bits: int = 0

    def as_dict(self, name: str) -> dict[str, Any]:
        """For the API."""
        return {
            "department_id": self.department_id,
            "name": name,
            "users_gaining": self.users_gaining,
            "users_losing": self.users_losing,
            "cameras_gained": self.gained_bits.bit_count(),
            "cameras_lost": self.lost_bits.bit_count(),
        }


@dataclass
class ActionEffect:
    """What a change does for one action: who gains or loses which cameras."""

    action: str
    users: list[UserEffect] = field(default_factory=list)
    departments: dict[str, DepartmentEffect] = field(default_factory=dict)
    gained_bits: int = 0
    lost_bits: int = 0

    @property
    def users_gaining(self) -> int:
        """Users who may see at least one more camera."""
        return sum(1 for u in self.users if u.gained)

    @property
    def users_losing(self) -> int:
        """Users who lose at least one camera."""
        return sum(1 for u in self.users if u.lost)


def _depts(keys: frozenset[str] | None) -> set[str]:
    return {k.removeprefix("dept:") for k in keys or () if k.startswith("dept:")}


def visibility_effect(
    before: VisibilityIndex,
    before_keys: Mapping[int, frozenset[str]],
    after: VisibilityIndex,
    after_keys: Mapping[int, frozenset[str]],
    action: str,
    now: float,
    *,
    unrestricted: frozenset[int] = frozenset(),
) -> ActionEffect:
    """Compare every user's visible cameras for ``action`` before and after a change.

    ``before_keys``/``after_keys`` map users to their policy subjects (a user missing on one side
    sees nothing there: inactive or unknown). ``unrestricted`` users (system admins) see
    everything either way and are left out.
    """
    effect = ActionEffect(action)
    memo: dict[tuple[frozenset[str] | None, frozenset[str] | None], tuple[int, int, list[str], list[str]]] = {}
    for uid in sorted(set(before_keys) | set(after_keys)):
        if uid in unrestricted:
            continue
        b, a = before_keys.get(uid), after_keys.get(uid)
        pair = (b, a)
        if pair not in memo:
            bb = before.visible(b, action, now).bits if b is not None else 0
            ab = after.visible(a, action, now).bits if a is not None else 0
            g, lo = ab & ~bb, bb & ~ab
            memo[pair] = (g, lo, _first(after, g), _first(before, lo))
        gained, lost, gained_sample, lost_sample = memo[pair]
        if not gained and not lost:
            continue
        effect.users.append(
            UserEffect(
                uid,
                gained.bit_count(),
                lost.bit_count(),
                tuple(gained_sample),
                tuple(lost_sample),
            )
        )
        effect.gained_bits |= gained
        effect.lost_bits |= lost
        for d in sorted(_depts(a) | _depts(b)):
            de = effect.departments.setdefault(d, DepartmentEffect(d))
            if gained:
                de.users_gaining += 1
                de.gained_bits |= gained
            if lost:
                de.users_losing += 1
                de.lost_bits |= lost
    return effect


def _first(index: VisibilityIndex, bits: int) -> list[str]:
    out: list[str] = []
    if not bits:
        return out
    for cid in index.view(bits):
        out.append(cid)
        if len(out) >= SAMPLE:
            break
    return out
