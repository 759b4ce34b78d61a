"""Build the compiled index and a plain Casbin enforcer from the same world, and compare them.

Used by the test suite and by ``bench/acl_bench.py``: the index must give exactly Casbin's answers.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from acl.casbin_model import reference_enforcer
from acl.index import ACTION_LEVEL, CameraAttrs, Rule, VisibilityIndex, parse_window

__all__ = ["Comparison", "build_index", "compare", "user_subjects"]


def user_subjects(memberships: Sequence[tuple[int, str, str]], role: str = "operator") -> dict[int, frozenset[str]]:
    """Each user's subject keys: their departments, their roles there, and their system role."""
    out: dict[int, set[str]] = {}
    for uid, dept, mrole in memberships:
        out.setdefault(uid, {f"role:{role}"}).update({f"dept:{dept}", f"role:{mrole}"})
    return {k: frozenset(v) for k, v in out.items()}


def build_index(world: Any) -> VisibilityIndex:
    """The compiled index of a :mod:`fixtures.world` world."""
    cams = [CameraAttrs(c[0], c[1], c[2], c[3], tuple(c[4]), c[5]) for c in world.cameras]
    rules = []
    for i, (sub, obj, act, eft, window, tag) in enumerate(world.rules):
        nbf, exp = parse_window(window)
        rules.append(Rule(sub, obj, act, eft, nbf, exp, tag, i))
    return VisibilityIndex(cams, rules, world.static_groups, world.dynamic_groups)


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of an equivalence check."""

    checked: int
    mismatches: int
    allowed: int
    examples: list[tuple[int, str, str, bool, bool]]


def compare(world: Any, pairs: int, now: float, seed: int = 1) -> Comparison:
    """Check ``pairs`` random (user, camera, action) questions against a plain Casbin enforcer."""
    index = build_index(world)
    subjects = user_subjects(world.memberships)
    g = [[f"user:{uid}", key] for uid, keys in subjects.items() for key in keys]
    g2 = [[f"cam:{cid}", f"group:{gid}"] for gid, members in world.static_groups.items() for cid in members]
    for gid in world.dynamic_groups:
        bits = index.target_bits(f"group:{gid}")
        g2 += [[f"cam:{c.id}", f"group:{gid}"] for i, c in enumerate(index.cameras) if bits >> i & 1]
    enforcer = reference_enforcer(None, memberships=g, group_members=g2, rules=world.rules, now=now)
    rnd = random.Random(seed)
    users = sorted(subjects)
    cams = [c[0] for c in world.cameras]
    # Bias half the sample towards cameras a rule names directly, so allows and denies are both exercised.
    named = [r[1].removeprefix("cam:") for r in world.rules if r[1].startswith("cam:")]
    mismatches = allowed = 0
    examples: list[tuple[int, str, str, bool, bool]] = []
    for n in range(pairs):
        uid = rnd.choice(users)
        cid = rnd.choice(named) if n % 2 and named else rnd.choice(cams)
        act = rnd.choice(list(ACTION_LEVEL))
        ours = index.allowed(subjects[uid], act, cid, now)
        theirs = bool(enforcer.enforce(f"user:{uid}", f"cam:{cid}", act))
        allowed += theirs
        if ours != theirs:
            mismatches += 1
            if len(examples) < 10:
                examples.append((uid, cid, act, ours, theirs))
    return Comparison(pairs, mismatches, allowed, examples)
