"""The service answers exactly like a plain Casbin enforcer over the same stored policy.

The enforcer loads the stored rules through the Casbin adapter on the project database; the
lines derived from other tables (memberships, dynamic groups, trucks outside the district) are
computed independently in :mod:`acl.equivalence`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from acl.equivalence import compare_service, enrich, populate, reference_from_database, rule_targets
from fixtures.world import make_world
from gateway.settings import load_settings
from gateway.wiring import create_app

ROOT = Path(__file__).resolve().parents[2]
INSIDE, OUTSIDE, FAR_INSIDE = (31.15, 121.40), (31.30, 121.25), (31.12, 121.45)


@dataclass
class Scene:
    acl: Any
    settings: Any
    engine: Any
    world: Any
    fixes: list[tuple[str, float, float, float]]
    now: float

    def reference(self, at: float | None = None) -> Any:
        a = self.settings.acl
        return reference_from_database(
            self.engine,
            home_district=a.home_district,
            district_geojson=a.district_geojson,
            positions=self.fixes,
            position_max_age_s=a.position_max_age_s,
            now=self.now if at is None else at,
        )

    def focus(self) -> list[str]:
        trucks = [c for cams in self.acl.location.truck_cameras().values() for c in cams]
        return rule_targets(self.world.rules) + trucks


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scene]:
    async def build() -> Scene:
        now = time.time()
        world = make_world(cameras=400, users=80, single_grants_per_station=2, denies=20, incidents=30, now=now)
        enrich(world, now=now)
        settings = load_settings(
            None,
            data_dir=tmp_path_factory.mktemp("eq"),
            acl={"district_geojson": ROOT / "fixtures" / "district.geojson"},
        )
        app = create_app(settings)
        ld = app.state.ld
        await asyncio.to_thread(ld.db.migrate)
        await populate(ld.db, world)
        await ld.acl.load()
        fixes = []
        # Foreign trucks: fresh inside, outside, stale inside; the district's own trucks anywhere.
        for i, vid in enumerate(sorted(ld.acl.location.foreign_trucks())):
            (lat, lon), age = [(INSIDE, 1), (OUTSIDE, 1), (FAR_INSIDE, 10_000)][i % 3]
            fixes.append((vid, lat, lon, now - age))
        home = sorted({str(c[5]) for c in world.cameras if c[2] == "truck"} - set(ld.acl.location.foreign_trucks()))
        fixes.append((home[0], *OUTSIDE, now))
        for f in fixes:
            ld.acl.location.update_vehicle_position(*f)
        engine = ld.db.sync_engine()
        await ld.db.close()  # answers need no database; the reference reads it synchronously
        return Scene(ld.acl, settings, engine, world, fixes, now)

    sc = asyncio.run(build())
    yield sc
    sc.engine.dispose()


def test_service_matches_casbin_on_10000_questions(scene: Scene) -> None:
    assert len(scene.acl.location.foreign_trucks()) >= 6  # the location rule is exercised, both ways
    result = compare_service(scene.acl.decider, scene.reference(), 10_000, now=scene.now, focus=scene.focus())
    assert result.checked == 10_000
    assert result.mismatches == 0, result.examples
    assert 500 < result.allowed < 9_000  # both answers are exercised (six actions since recording)


def test_validity_windows_agree_at_other_times(scene: Scene) -> None:
    for k, at in enumerate((scene.now - 5000, scene.now + 1800, scene.now + 9000)):
        result = compare_service(scene.acl.decider, scene.reference(at), 600, now=at, seed=k, focus=scene.focus())
        assert result.mismatches == 0, (at, result.examples)


def test_comparison_detects_a_wrong_index(scene: Scene) -> None:
    # Drop every deny rule from the compiled index only: the check must notice.
    index = scene.acl.decider.index
    denies = [r for rules in index._by_subject.values() for r in rules if r.eft == "deny"]
    for r in denies:
        index.remove_rule(r.rule_id)
    try:
        result = compare_service(scene.acl.decider, scene.reference(), 1_500, now=scene.now, focus=scene.focus())
        assert result.mismatches > 0
    finally:
        for r in denies:
            index.add_rule(r)
    assert (
        compare_service(scene.acl.decider, scene.reference(), 300, now=scene.now, focus=scene.focus()).mismatches == 0
    )
