"""Evidence locks are policy revisions: a security admin's lock and unlock each make a revision with
author, reason and the lock in its diff (in the admin history); bad input stores neither lock nor
revision; a policy rollback leaves a lock standing (only an unlock lifts it); others get 403."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from acl.audit import AuditEntry
from acl.models import Role
from tests.live import LiveGateway, gateway_with

CAM = "cam-lock"


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))


@pytest.fixture
async def gw(tmp_path: Path) -> AsyncIterator[tuple[LiveGateway, dict[str, str]]]:
    # The camera need not answer: locks are about what the index holds, not the live stream.
    async with gateway_with(tmp_path / "data", {CAM: "rtsp://127.0.0.1:9/none"}) as (g, _admin):
        yield g, await g.add_user("sec", Role.security_admin)


async def revisions(g: LiveGateway, headers: dict[str, str]) -> list[dict[str, Any]]:
    r = await g.client.get("/api/admin/revisions", headers=headers)
    assert r.status_code == 200, r.text
    return list(r.json())


async def test_lock_and_unlock_are_policy_revisions_a_rollback_does_not_lift(
    gw: tuple[LiveGateway, dict[str, str]],
) -> None:
    g, sec = gw
    now = time.time()
    body = {"start": iso(now - 3600), "end": iso(now - 1800), "reason": "case 2026-17"}
    op = await g.add_user("op", Role.operator)
    assert (await g.client.post(f"/api/cameras/{CAM}/recordings/locks", json=body, headers=op)).status_code == 403
    before = await revisions(g, sec)

    # Bad input: a clear 422 naming the field, and nothing stored.
    r = await g.client.post(f"/api/cameras/{CAM}/recordings/locks", json={**body, "reason": "  "}, headers=sec)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "reason", r.text
    r = await g.client.post(f"/api/cameras/{CAM}/recordings/locks", json={**body, "end": body["start"]}, headers=sec)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "end", r.text
    assert await revisions(g, sec) == before
    assert (await g.client.get("/api/recordings/locks", headers=sec)).json() == []

    r = await g.client.post(f"/api/cameras/{CAM}/recordings/locks", json=body, headers=sec)
    assert r.status_code == 201, r.text
    lock = r.json()
    rev = (await revisions(g, sec))[0]
    assert rev["id"] == lock["revision"] and rev["author"] == "sec" and rev["reason"] == "case 2026-17"
    (change,) = rev["changes"]
    assert change["kind"] == "evidence_lock" and change["op"] == "add" and change["recorded"] is True
    assert change["row"]["id"] == lock["id"] and change["row"]["camera_id"] == CAM

    # A rule after the lock, then a rollback to before the lock: the rule goes, the lock stands.
    rule = {"subject": "role:operator", "target": f"cam:{CAM}", "action": "playback", "reason": "x"}
    r = await g.client.post("/api/admin/rules", json=rule, headers=sec)
    assert r.status_code == 201, r.text
    assert (await g.client.get(f"/api/cameras/{CAM}/recordings", headers=op)).status_code == 200
    back_to = before[0]["id"] if before else 0
    r = await g.client.post(f"/api/admin/revisions/{back_to}/rollback", json={"reason": "undo"}, headers=sec)
    assert r.status_code == 200, r.text
    assert (await g.client.get(f"/api/cameras/{CAM}/recordings", headers=op)).status_code == 403
    standing = (await g.client.get("/api/recordings/locks", headers=sec)).json()
    assert [x["id"] for x in standing] == [lock["id"]]

    # Unlock: a revision of its own, with its reason; the lock stays on record, lifted.
    r = await g.client.post(f"/api/recordings/locks/{lock['id']}/lift", json={"reason": "case closed"}, headers=sec)
    assert r.status_code == 200, r.text
    lifted = r.json()
    assert lifted["lifted_by"] == "sec" and lifted["lift_reason"] == "case closed"
    rev = (await revisions(g, sec))[0]
    assert rev["id"] == lifted["revision"] and rev["reason"] == "case closed"
    assert rev["changes"][0]["kind"] == "evidence_lock" and rev["changes"][0]["op"] == "remove"
    assert (await g.client.get("/api/recordings/locks", headers=sec)).json() == []
    r = await g.client.post(f"/api/recordings/locks/{lock['id']}/lift", json={"reason": "again"}, headers=sec)
    assert r.status_code == 404

    async with g.ld.db.session() as s:
        kinds = [e.kind for e in (await s.scalars(select(AuditEntry).order_by(AuditEntry.id))).all()]
    assert "recording.lock" in kinds and "recording.unlock" in kinds
    assert kinds.count("policy_change") >= 4  # lock, rule, rollback, unlock
