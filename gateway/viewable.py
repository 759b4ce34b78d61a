"""Camera ids named inside replies about other things, cut down to what the caller may view.

An operator may see an incident (by department) or a vehicle (by one of its cameras) without being
allowed every camera it names; replies must not reveal the others, as events already do not
(:data:`gateway.events.CAMERA_FIELDS`). "May view" is the camera list's question: at least a
snapshot, asked of the ACL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from acl.authorizer import Authorizer
from acl.identity import Subject

__all__ = ["VIEW_ACTION", "viewable_cameras", "viewable_incident"]

VIEW_ACTION = "view_snapshot"


def viewable_cameras(authorizer: Authorizer, subject: Subject, camera_ids: Iterable[str]) -> list[str]:
    """``camera_ids`` (order kept) that ``subject`` may view."""
    return [c for c in camera_ids if authorizer.authorize(subject, VIEW_ACTION, c)]


def viewable_incident(authorizer: Authorizer, subject: Subject, incident: dict[str, Any]) -> dict[str, Any]:
    """An incident reply (``incident_dict``) with its cameras, and those its history says were
    added, cut down to what ``subject`` may view."""
    out = dict(incident)
    out["cameras"] = viewable_cameras(authorizer, subject, incident.get("cameras") or [])
    out["history"] = [
        {**h, "added": viewable_cameras(authorizer, subject, h["added"])} if isinstance(h.get("added"), list) else h
        for h in incident.get("history") or []
    ]
    return out
