"""The compiled index answers exactly like a plain Casbin enforcer (10,000 questions)."""

from __future__ import annotations

from acl.equivalence import compare
from fixtures.world import make_world

NOW = 1_800_000_000.0


def test_index_matches_casbin_on_10000_pairs() -> None:
    world = make_world(cameras=600, users=100, single_grants_per_station=3, denies=30, incidents=40, now=NOW)
    result = compare(world, 10_000, now=NOW)
    assert result.checked == 10_000
    assert result.mismatches == 0, result.examples
    # The sample exercises both answers (not a vacuous all-deny comparison).
    assert 1_000 < result.allowed < 9_000


def test_windows_agree_at_other_times() -> None:
    world = make_world(cameras=300, users=50, single_grants_per_station=2, denies=20, incidents=80, now=NOW)
    for t in (NOW - 5000, NOW + 1800, NOW + 9000):
        assert compare(world, 1_500, now=t, seed=int(t) % 97).mismatches == 0
