"""Check the compiled index against a plain Casbin enforcer on the same stored policy.

The reference is built independently of :class:`acl.service.AclService`: Casbin's enforcer loads
the ``p`` and ``g2`` lines through :class:`acl.casbin_model.SqlAdapter` from the project database,
and the lines that derive from other tables (users' memberships, the members of dynamic groups,
the trucks outside the district) are computed here with plain SQL, Python filters and shapely.
Used by the test suite and by ``bench/acl_bench.py``: the service must give exactly Casbin's answers.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import casbin
from sqlalchemy import Engine, insert, select

from acl.casbin_model import reference_enforcer
from acl.decider import AccessDecider
from acl.index import ACTION_LEVEL, FOREIGN_TRUCKS_OUTSIDE
from acl.models import Membership, Role, User
from acl.policy_models import CameraGroup, CasbinRule, Department, OrgLevel
from camera_registry.districts import same_district
from camera_registry.models import Camera, CameraKind, CameraStatus, Vehicle, VehicleKind
from storage.db import Database

__all__ = ["Comparison", "compare_service", "enrich", "populate", "reference_from_database"]

FOREIGN = "江苏省苏州市"


def enrich(world: Any, seed: int = 11, now: float | None = None) -> Any:
    """Add the rule kinds the scale world lacks, so the comparison covers every one: ``*`` and
    membership-role subjects, ``manage``, deny rules on groups, dynamic groups by tag and by
    several attributes, and windows that open in the future."""
    now = time.time() if now is None else now
    rnd = random.Random(seed)
    ids = [c[0] for c in world.cameras]
    units = [d[0] for d in world.departments]
    world.dynamic_groups["tag-school"] = {"tag": ["学校"]}
    world.dynamic_groups["bus-or-truck-in-2-areas"] = {"kind": ["bus", "truck"], "area": ["莘庄镇", "七宝镇"]}
    world.static_groups["hot"] = rnd.sample(ids, min(25, len(ids)))
    world.rules += [
        ["*", "group:tag-school", "view_snapshot", "allow", "", ""],
        ["role:lead", "group:bus-or-truck-in-2-areas", "view_live", "allow", "", ""],
        ["dept:police", "group:hot", "manage", "allow", "", ""],
        ["role:member", "group:hot", "view_live", "deny", "", ""],
        ["dept:transport", "group:kind-truck", "view_snapshot", "deny", "", ""],
        ["*", f"cam:{rnd.choice(ids)}", "manage", "deny", "", ""],
        ["role:operator", f"cam:{rnd.choice(ids)}", "view_live", "allow", f"{now + 3600:.0f}..", "future"],
        ["role:operator", f"cam:{rnd.choice(ids)}", "view_live", "allow", f"..{now - 60:.0f}", "expired"],
    ]
    for _ in range(20):
        world.rules.append([f"dept:{rnd.choice(units)}", f"cam:{rnd.choice(ids)}", "manage", "allow", "", ""])
    return world


async def populate(db: Database, world: Any, *, trucks_foreign_every: int = 2) -> None:
    """Bulk-load a :mod:`fixtures.world` world into the project database (users have no password).

    Bus and truck cameras get their vehicles; every ``trucks_foreign_every``-th truck is registered
    outside the district (0: none), so the location rule has trucks to act on.
    """
    vehicles: dict[str, dict[str, Any]] = {}
    for c in world.cameras:
        vid = c[5]
        if vid and vid not in vehicles:
            truck = c[2] == "truck"
            n = len(vehicles)
            foreign = truck and trucks_foreign_every and n % trucks_foreign_every == 0
            vehicles[vid] = {
                "id": vid,
                "kind": VehicleKind(c[2]),
                "plate": f"沪X{n:05d}",
                "home_district": FOREIGN if foreign else "闵行区",
            }
    async with db.session() as s:
        if vehicles:
            await s.execute(insert(Vehicle), list(vehicles.values()))
        await s.execute(
            insert(Camera),
            [
                {
                    "id": c[0],
                    "name": c[0],
                    "kind": CameraKind(c[2]),
                    "source_url": "rtsp://127.0.0.1:9/x",
                    "area": c[1],
                    "department": c[3],
                    "tags": c[4],
                    "vehicle_id": c[5],
                    "status": CameraStatus.unknown,
                }
                for c in world.cameras
            ],
        )
        await s.execute(
            insert(Department),
            [
                {"id": d[0], "name": d[1], "level": OrgLevel(d[2]), "parent_id": d[3], "area": d[4]}
                for d in world.departments
            ],
        )
        await s.execute(
            insert(User),
            [
                {"id": uid, "username": f"user{uid}", "role": Role.operator, "display_name": ""}
                for uid in range(1, world.users + 1)
            ],
        )
        await s.execute(
            insert(Membership), [{"user_id": u, "department_id": d, "role": r} for u, d, r in world.memberships]
        )
        groups = [{"id": g, "name": g, "dynamic": True, "filter": f} for g, f in world.dynamic_groups.items()]
        groups += [{"id": g, "name": g, "dynamic": False, "filter": {}} for g in world.static_groups]
        await s.execute(insert(CameraGroup), groups)
        rows = [
            {"ptype": "p", "v0": r[0], "v1": r[1], "v2": r[2], "v3": r[3], "v4": r[4], "v5": r[5]} for r in world.rules
        ]
        rows += [
            {"ptype": "g2", "v0": f"cam:{c}", "v1": f"group:{g}", "v2": "", "v3": "", "v4": "", "v5": ""}
            for g, members in world.static_groups.items()
            for c in members
        ]
        await s.execute(insert(CasbinRule), rows)


def _polygon(path: Path | None) -> Any:
    if path is None:
        return None
    from shapely.geometry import shape

    doc = json.loads(path.read_text(encoding="utf-8"))
    if doc.get("type") == "FeatureCollection":
        doc = doc["features"][0]["geometry"]
    elif doc.get("type") == "Feature":
        doc = doc["geometry"]
    return shape(doc)


@dataclass
class Reference:
    """A plain Casbin enforcer over the stored policy, and who and what it knows."""

    enforcer: casbin.Enforcer
    users: list[tuple[int, str, str]]  # active users: (id, username, system role)
    cameras: list[str]


def reference_from_database(
    engine: Engine,
    *,
    home_district: str,
    district_geojson: Path | None,
    positions: Iterable[tuple[str, float, float, float]] = (),
    position_max_age_s: float = 300,
    now: float | None = None,
) -> Reference:
    """Casbin's enforcer on the stored rules, plus the derived ``g``/``g2`` lines computed here.

    ``positions`` are the GPS fixes (vehicle, lat, lon, epoch) the service was given; their
    freshness is judged by the real clock, as the service does, and validity windows at ``now``.
    """
    wall = time.time()
    with engine.connect() as conn:
        users = [
            (uid, name, role.value if isinstance(role, Role) else str(role))
            for uid, name, role in conn.execute(
                select(User.id, User.username, User.role).where(User.active.is_(True)).order_by(User.id)
            ).all()
        ]
        memberships = conn.execute(select(Membership.user_id, Membership.department_id, Membership.role)).all()
        cams = conn.execute(
            select(
                Camera.id, Camera.area, Camera.kind, Camera.department, Camera.tags, Camera.vehicle_id, Camera.station
            ).order_by(Camera.id)
        ).all()
        dynamic = conn.execute(select(CameraGroup.id, CameraGroup.filter).where(CameraGroup.dynamic.is_(True))).all()
        homes = dict(conn.execute(select(Vehicle.id, Vehicle.home_district)).all())
        location_rule = conn.execute(
            select(CasbinRule.id).where(CasbinRule.v1 == f"group:{FOREIGN_TRUCKS_OUTSIDE}")
        ).first()
    active = {u[0] for u in users}
    g = [[f"user:{uid}", f"role:{role}"] for uid, _, role in users]
    for uid, dept, mrole in memberships:
        if uid in active:
            g += [[f"user:{uid}", f"dept:{dept}"], [f"user:{uid}", f"role:{mrole}"]]
    g2: list[list[str]] = []
    for gid, flt in dynamic:
        for cid, area, kind, dept, tags, _vid, station in cams:
            attrs = {
                "area": {area},
                "station": {station},
                "kind": {kind.value if isinstance(kind, CameraKind) else str(kind)},
                "department": {dept},
                "tag": set(tags or ()),
            }
            if flt and all(attrs[k] & set(vals) for k, vals in flt.items()):
                g2.append([f"cam:{cid}", f"group:{gid}"])
    if location_rule is not None:
        from shapely.geometry import Point

        poly = _polygon(district_geojson)
        last: dict[str, tuple[float, float, float]] = {}
        for fix_vid, lat, lon, t in positions:
            if fix_vid not in last or last[fix_vid][2] <= t:
                last[fix_vid] = (lat, lon, t)
        for cid, _area, kind, _dept, _tags, vid, _station in cams:
            is_truck = (kind.value if isinstance(kind, CameraKind) else str(kind)) == "truck"
            if not is_truck or vid is None or vid not in homes or same_district(homes[vid], home_district):
                continue
            fix = last.get(vid)
            inside = (
                poly is not None
                and fix is not None
                and wall - fix[2] <= position_max_age_s
                and bool(poly.contains(Point(fix[1], fix[0])))
            )
            if not inside:
                g2.append([f"cam:{cid}", f"group:{FOREIGN_TRUCKS_OUTSIDE}"])
    enforcer = reference_enforcer(engine, memberships=g, group_members=g2, now=now)
    return Reference(enforcer, users, [c[0] for c in cams])


@dataclass(frozen=True, slots=True)
class Comparison:
    """The outcome of an equivalence check."""

    checked: int
    mismatches: int
    allowed: int
    examples: list[tuple[int, str, str, bool, bool]]


def compare_service(
    decider: AccessDecider, ref: Reference, pairs: int, *, now: float, seed: int = 1, focus: Sequence[str] = ()
) -> Comparison:
    """Ask the service's decider and the reference ``pairs`` random (user, camera, action) questions.

    Half the questions pick cameras from ``focus`` (e.g. cameras rules name directly, trucks),
    so that allows and denies are both exercised; system admins are skipped (they bypass rules).
    """
    rnd = random.Random(seed)
    users = [u for u in ref.users if u[2] != Role.admin.value]
    focus = list(focus)
    mismatches = allowed = 0
    examples: list[tuple[int, str, str, bool, bool]] = []
    for n in range(pairs):
        uid, name, role = rnd.choice(users)
        cid = rnd.choice(focus) if n % 2 and focus else rnd.choice(ref.cameras)
        act = rnd.choice(list(ACTION_LEVEL))
        subject = decider.subject_for(uid, name, role)
        ours = decider.authorize(subject, act, cid, now=now)
        theirs = bool(ref.enforcer.enforce(f"user:{uid}", f"cam:{cid}", act))
        allowed += theirs
        if ours != theirs:
            mismatches += 1
            if len(examples) < 10:
                examples.append((uid, cid, act, ours, theirs))
    return Comparison(pairs, mismatches, allowed, examples)


def rule_targets(rules: Iterable[Sequence[str]]) -> list[str]:
    """Cameras that rules name directly (a useful ``focus`` for :func:`compare_service`)."""
    return sorted({r[1].removeprefix("cam:") for r in rules if r[1].startswith("cam:")})
