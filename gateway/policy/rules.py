"""The permission rules, as plain functions of a :class:`~acl.identity.Subject`.

Every guard in :mod:`gateway.policy.guards` decides with these, and so do the places that filter a
reply or an event for its reader (camera lists, camera sources, incident and vehicle replies,
live events): one rule, one function, asked wherever it applies. Camera questions go to the ACL
(``acl.authorize`` / ``acl.visible_cameras``); nothing here knows HTTP.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Set
from typing import Any, Protocol

from acl.authorizer import Authorizer
from acl.credentials import Kind
from acl.identity import Subject
from acl.models import Role

__all__ = [
    "SOURCE_FIELDS",
    "VEHICLE_DETAIL_FIELDS",
    "VIEW_ACTION",
    "AudienceFacts",
    "CameraAccess",
    "Refused",
    "camera_check",
    "has_role",
    "may_end_session",
    "may_grant_role",
    "may_manage_user",
    "may_see_camera_sources",
    "may_see_vehicle",
    "may_view_vehicle",
    "owner_scope",
    "receives_event",
    "vehicle_details",
    "viewable_cameras",
    "viewable_incident",
    "visible_camera_ids",
    "visible_cameras_in",
]

# "May view" a camera, as replies about other things (lists, incidents, vehicles, events) ask it.
VIEW_ACTION = "view_snapshot"
# Where and how a camera is reached: only those who may see camera sources get these fields.
SOURCE_FIELDS = ("source_url", "has_credentials")

CameraCheck = Callable[[Subject, str], bool]


class CameraAccess(Protocol):
    """The ACL's one camera question."""

    def authorize(self, subject: Subject, action: str, camera_id: str) -> bool:
        """Whether ``subject`` may do ``action`` on the camera now."""
        ...


class Refused(Exception):
    """A rule said no: ``field`` names the input that asked for too much (empty: the request as a whole)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}" if field else message)
        self.field = field
        self.message = message


# -- system roles ---------------------------------------------------------------------------------
def has_role(subject: Subject, roles: Iterable[Role]) -> bool:
    """Whether ``subject``'s system role is one of ``roles``; an admin always has it."""
    return subject.is_admin or subject.role in set(roles)


def may_grant_role(subject: Subject, role: Role | str | None) -> bool:
    """Whether ``subject`` may give a user ``role`` (create or change a user to it): only an admin
    may make an admin; any other role, whoever may edit users."""
    return role not in (Role.admin, Role.admin.value) or subject.is_admin


def may_manage_user(subject: Subject, current_role: Role) -> bool:
    """Whether ``subject`` may change a user who now has ``current_role``: only admins change admins."""
    return current_role is not Role.admin or subject.is_admin


def owner_scope(
    subject: Subject,
    user_id: int | None = None,
    *,
    everyone: bool = False,
    admins_see_all: bool = False,
    rows: str = "rows",
) -> int | None:
    """Whose ``rows`` (sessions, tokens) ``subject`` may list or end: a user id to restrict to, or
    None for every user's. Everyone else than an admin gets their own, and asking for someone
    else's (``user_id``) or everyone's (``everyone``) raises :class:`Refused` (its field says which).
    An admin gets what they ask for: everyone's, ``user_id``'s, else everyone's with
    ``admins_see_all`` and their own without."""
    if subject.is_admin:
        if everyone:
            return None
        if user_id is not None:
            return user_id
        return None if admins_see_all else subject.user_id
    if everyone:
        raise Refused("everyone", "admins only")
    if user_id not in (None, subject.user_id):
        raise Refused("user_id", f"only admins may list other users' {rows}")
    return subject.user_id


# -- viewer sessions ------------------------------------------------------------------------------
def may_end_session(subject: Subject, session: dict[str, Any]) -> bool:
    """Whether ``subject`` may end (or change) a viewer session: opened by the same user with a login
    (not a stream token), opened with the very stream token the caller presents, or an admin."""
    if subject.credential is Kind.stream_token:
        return session.get("credential_ref") == subject.credential_ref and session.get("user_id") == subject.user_id
    return bool(session.get("user_id") == subject.user_id or subject.is_admin)


# -- cameras --------------------------------------------------------------------------------------
def may_see_camera_sources(subject: Subject) -> bool:
    """Whether camera replies show ``subject`` the source URL: only administrators, who register
    and repair cameras. Viewers watch through the gateway and never need the camera's address."""
    return subject.is_admin


def visible_camera_ids(authorizer: Authorizer, subject: Subject) -> Set[str] | None:
    """The cameras ``subject`` may view (at least a snapshot), or None for every camera (admins),
    which a camera search takes as "no filter"."""
    if subject.is_admin:
        return None
    return authorizer.visible_cameras(subject, VIEW_ACTION)


def camera_check(cameras: CameraAccess) -> CameraCheck:
    """The "may view" question as a function of subject and camera id (what event viewers hold)."""

    def may_view(subject: Subject, camera_id: str) -> bool:
        return bool(cameras.authorize(subject, VIEW_ACTION, camera_id))

    return may_view


def visible_cameras_in(subject: Subject, camera_ids: Iterable[str], may_view: CameraCheck) -> list[str]:
    """``camera_ids`` (order kept) that ``subject`` may view, asked of ``may_view``; all of them
    for an admin (who may view every camera, as the ACL answers too)."""
    if subject.is_admin:
        return list(camera_ids)
    return [c for c in camera_ids if may_view(subject, c)]


def viewable_cameras(cameras: CameraAccess, subject: Subject, camera_ids: Iterable[str]) -> list[str]:
    """``camera_ids`` (order kept) that ``subject`` may view.

    An operator may see an incident (by department) or a vehicle (by one of its cameras) without
    being allowed every camera it names; replies must not reveal the others."""
    return visible_cameras_in(subject, camera_ids, camera_check(cameras))


def viewable_incident(cameras: CameraAccess, subject: Subject, incident: dict[str, Any]) -> dict[str, Any]:
    """An incident reply (``incident_dict``) with its cameras, and those its history says were
    added, cut down to what ``subject`` may view."""
    out = dict(incident)
    out["cameras"] = viewable_cameras(cameras, subject, incident.get("cameras") or [])
    out["history"] = [
        {**h, "added": viewable_cameras(cameras, subject, h["added"])} if isinstance(h.get("added"), list) else h
        for h in incident.get("history") or []
    ]
    return out


def may_view_vehicle(cameras: CameraAccess, subject: Subject, camera_ids: Iterable[str]) -> bool:
    """Whether ``subject`` may see a vehicle (its position, its track): if they may view one of its cameras."""
    return any(cameras.authorize(subject, VIEW_ACTION, c) for c in camera_ids)


# What a vehicle panel shows of each kind: a bus's line, plate, driver and company; a hazardous-goods
# truck's cargo, escort, driver and their phone, company and where it is registered. Nothing else of
# the record (a bus driver's phone, the dispatch contact) leaves the server.
VEHICLE_DETAIL_FIELDS = {
    "bus": ("plate", "line", "driver", "company", "home_district"),
    "truck": ("plate", "cargo", "escort", "driver", "driver_phone", "company", "home_district"),
}


def may_see_vehicle(
    cameras: CameraAccess, subject: Subject, camera_ids: Iterable[str], kind_camera_ids: Iterable[str]
) -> bool:
    """Whether ``subject`` may see a vehicle on the map and in its panel: one with cameras if they
    may view one of them (:func:`may_view_vehicle`); one with GPS but no camera yet if they may view
    a camera on another vehicle of its kind (``kind_camera_ids``: whoever watches the buses sees
    every bus)."""
    ids = list(camera_ids)
    if ids:
        return may_view_vehicle(cameras, subject, ids)
    return may_view_vehicle(cameras, subject, kind_camera_ids)


def vehicle_details(
    cameras: CameraAccess,
    subject: Subject,
    record: dict[str, Any],
    camera_ids: Iterable[str],
    *,
    shared: bool,
) -> dict[str, Any] | None:
    """The vehicle panel's reply for ``record`` (id, kind and the vehicle's fields), or None when
    ``subject`` may not see it. ``shared`` is the location rule's answer: a truck registered
    elsewhere is shown only while inside the district, to everyone alike (administrators too: it
    is the registering district's condition for sharing, not a viewing grant). The cameras listed
    are those the subject may view."""
    if not shared:
        return None
    kind = str(record.get("kind", ""))
    fields = VEHICLE_DETAIL_FIELDS.get(kind, ("plate",))
    return {
        "id": record["id"],
        "kind": kind,
        **{f: record.get(f) for f in fields},
        "cameras": viewable_cameras(cameras, subject, camera_ids),
    }


# -- live events ----------------------------------------------------------------------------------
class AudienceFacts(Protocol):
    """Who an event is for (:class:`gateway.events.Audience`)."""

    @property
    def cameras(self) -> tuple[str, ...]: ...
    @property
    def departments(self) -> tuple[str, ...]: ...
    @property
    def users(self) -> tuple[int, ...]: ...
    @property
    def roles(self) -> tuple[str, ...]: ...
    @property
    def everyone(self) -> bool: ...


def receives_event(subject: Subject, audience: AudienceFacts, may_view: CameraCheck) -> bool:
    """Whether ``subject`` is in an event's audience: administrators always (an event with no
    audience is theirs alone); others if they may view one of its cameras, are named (as a user, by
    system role, or everyone), or belong to one of its departments."""
    if subject.is_admin:
        return True
    return (
        audience.everyone
        or subject.user_id in audience.users
        or subject.role.value in audience.roles
        or bool(subject.departments & set(audience.departments))
        or any(may_view(subject, c) for c in audience.cameras)
    )
