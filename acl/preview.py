"""The effect of a proposed policy change on who sees what, computed without storing it.

The change runs as a dry run (:meth:`acl.policy.PolicyStore.dry_run`: every check, then rolled
back), its diff is applied to a copy of the compiled state, and each user's visible cameras before
and after are compared. Users share subject sets, so each distinct (before, after) pair is compared
once; at district scale (20k cameras, 5k users) that is a few hundred bitset operations.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import chain
from typing import Any

from acl.compiler import PolicyCompiler, apply_changes, user_keys
from acl.index import Rule, VisibilityIndex
from acl.models import Role
from acl.policy import Applied, Change, PolicyStore

__all__ = [
    "ActionEffect",
    "DepartmentEffect",
    "EffectBuilder",
    "PolicyPreview",
    "UserEffect",
    "affected_users",
    "visibility_effect",
]

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


def affected_users(
    changes: Iterable[Change],
    rules: Iterable[Rule],
    before_keys: Mapping[int, frozenset[str]],
    after_keys: Mapping[int, frozenset[str]],
) -> set[int] | None:
    """The users whose visible cameras ``changes`` can alter (None: possibly everyone).

    A user's answer depends only on the rules of their subjects (and ``*``) and on the members of
    the groups those rules target; so a change reaches the users holding a changed rule's subject,
    the users with a rule on a changed group, and users whose own memberships changed. ``rules``
    are those before and after the change (a rule naming a changed group on either side counts).
    """
    subjects: set[str] = set()
    users: set[int] = set()
    groups: set[str] = set()
    for ch in changes:
        row = ch.row
        if ch.kind == "rule" and row["ptype"] == "p":
            subjects.add(row["v0"])
        elif ch.kind == "rule" and row["ptype"] == "g2":
            groups.add(row["v1"].removeprefix("group:"))
        elif ch.kind == "group":
            groups.add(row["id"])
        elif ch.kind == "membership":
            users.add(row["user_id"])
    if groups:
        subjects.update(r.sub for r in rules if r.obj.startswith("group:") and r.obj[6:] in groups)
    if "*" in subjects:
        return None
    if subjects:
        users.update(uid for uid, keys in chain(before_keys.items(), after_keys.items()) if keys & subjects)
    return users


def _depts(keys: frozenset[str] | None) -> set[str]:
    return {k.removeprefix("dept:") for k in keys or () if k.startswith("dept:")}


class EffectBuilder:
    """Compares users' visible cameras before and after a change, a slice at a time.

    ``before_keys``/``after_keys`` map users to their policy subjects (a user missing on one side
    sees nothing there: inactive or unknown). ``unrestricted`` users (system admins) see
    everything either way and are left out; with ``only`` (see :func:`affected_users`) no other
    user is compared. :meth:`step` works for a time budget and returns, so a caller on an event
    loop can let other work run between slices.
    """

    def __init__(
        self,
        before: VisibilityIndex,
        before_keys: Mapping[int, frozenset[str]],
        after: VisibilityIndex,
        after_keys: Mapping[int, frozenset[str]],
        action: str,
        now: float,
        *,
        unrestricted: frozenset[int] = frozenset(),
        only: set[int] | None = None,
    ) -> None:
        self.before, self.after = before, after
        self.before_keys, self.after_keys = before_keys, after_keys
        self.action, self.now = action, now
        everyone = (set(before_keys) | set(after_keys)) - unrestricted
        self._pending = sorted(everyone if only is None else everyone & only)
        self._next = 0
        self._memo: dict[tuple[frozenset[str] | None, frozenset[str] | None], tuple[int, int, list[str], list[str]]]
        self._memo = {}
        self.effect = ActionEffect(action)

    def step(self, budget_s: float = math.inf) -> bool:
        """Compare users for about ``budget_s`` seconds; True once every user is compared."""
        deadline = time.perf_counter() + budget_s
        while self._next < len(self._pending):
            self._compare(self._pending[self._next])
            self._next += 1
            if time.perf_counter() >= deadline:
                break
        return self._next >= len(self._pending)

    def _compare(self, uid: int) -> None:
        b, a = self.before_keys.get(uid), self.after_keys.get(uid)
        pair = (b, a)
        if pair not in self._memo:
            bb = self.before.visible(b, self.action, self.now).bits if b is not None else 0
            ab = self.after.visible(a, self.action, self.now).bits if a is not None else 0
            g, lo = ab & ~bb, bb & ~ab
            self._memo[pair] = (g, lo, _first(self.after, g), _first(self.before, lo))
        gained, lost, gained_sample, lost_sample = self._memo[pair]
        if not gained and not lost:
            return
        effect = self.effect
        effect.users.append(
            UserEffect(uid, gained.bit_count(), lost.bit_count(), tuple(gained_sample), tuple(lost_sample))
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


def visibility_effect(
    before: VisibilityIndex,
    before_keys: Mapping[int, frozenset[str]],
    after: VisibilityIndex,
    after_keys: Mapping[int, frozenset[str]],
    action: str,
    now: float,
    *,
    unrestricted: frozenset[int] = frozenset(),
    only: set[int] | None = None,
) -> ActionEffect:
    """Every user's before/after comparison for ``action`` in one go (see :class:`EffectBuilder`)."""
    b = EffectBuilder(before, before_keys, after, after_keys, action, now, unrestricted=unrestricted, only=only)
    b.step()
    return b.effect


def _first(index: VisibilityIndex, bits: int) -> list[str]:
    out: list[str] = []
    if not bits:
        return out
    for cid in index.view(bits):
        out.append(cid)
        if len(out) >= SAMPLE:
            break
    return out


class PolicyPreview:
    """Dry runs of changes against the policy the decider answers from (nothing is stored)."""

    def __init__(self, policy: PolicyStore, compiler: PolicyCompiler) -> None:
        self.policy = policy
        self.compiler = compiler

    async def preview(
        self,
        op: Callable[[PolicyStore], Awaitable[Applied]] | None,
        actions: Iterable[str] = ("view_snapshot", "view_live"),
        *,
        user_roles: Mapping[int, str | None] | None = None,
    ) -> tuple[tuple[Change, ...], list[ActionEffect]]:
        """What a change (``op``, a :class:`PolicyStore` method call on the store it is given) would
        write and what it would do to every user's visible cameras, without storing anything.
        ``user_roles`` previews users' new system roles (None: deactivated) instead of, or with, a
        stored change. Raises :class:`~acl.policy.PolicyError` exactly as the change itself would."""
        d = self.compiler.decider
        async with self.compiler.writing:  # the dry run and the state it is compared with are one moment
            st = d.state
            assert st is not None
            changes = await self.policy.dry_run(op) if op is not None else ()
            after_state, after_index = st.copy(), d.index.fork()
            after_keys = dict(d.subjects)
            apply_changes(after_state, after_index, after_keys, changes)
            for uid, role in (user_roles or {}).items():
                if role is None:
                    after_state.user_roles.pop(uid, None)
                else:
                    after_state.user_roles[uid] = role
                keys = user_keys(after_state, uid)
                if keys is None:
                    after_keys.pop(uid, None)
                else:
                    after_keys[uid] = keys
            # Private copies: the comparison runs in slices while this index keeps serving and changing.
            before_index, before_keys = d.index.fork(), dict(d.subjects)
            # System admins see everything either way; one made or unmade admin is left out too.
            admins = frozenset(u for s_ in (st, after_state) for u, r in s_.user_roles.items() if r == Role.admin.value)
            rules = [*st.rules, *after_state.rules]
        now = time.time()
        only = affected_users(changes, rules, before_keys, after_keys)
        if only is not None and user_roles:
            only |= set(user_roles)
        builders = [
            EffectBuilder(before_index, before_keys, after_index, after_keys, a, now, unrestricted=admins, only=only)
            for a in actions
        ]
        # A change for everyone (a "*" rule) compares every subject set: seconds at district scale.
        # Slices of a few milliseconds keep the event loop (which relays video) responsive.
        for b in builders:
            finished = False
            while not finished:
                finished = b.step(0.005)
                await asyncio.sleep(0)  # let the loop run between slices
        return changes, [b.effect for b in builders]
