"""Route policies: every route declares who may call it; a route without one fails the test suite.

Every authorization decision is made here and only here (with :mod:`acl` answering the camera
questions): routes, services and event streams ask these guards and rules instead of deciding
themselves (no ``is_admin`` short-cuts elsewhere). Routers attach exactly one guard to each route:

- :func:`public` -- no credentials (health, login).
- :func:`authenticated` -- any logged-in user.
- :func:`require_roles` -- a system role (admin, security_admin, auditor).
- :func:`require_user_admin` -- a role that edits users, and only admins make or change admins.
- :func:`require_owner_or_admin` -- rows of users (sessions, tokens): your own, anyone's for admins.
- :func:`require_camera` -- ``acl.authorize(subject, action, camera_id)`` on the ``camera_id`` path
  parameter.
- :func:`require_session` -- a viewer session's owner (the credential that opened it) or an admin.
- :func:`require_incident` -- the incident rules for the ``incident_id`` path parameter.
- :func:`require_case_intake` -- who may open a case (call-takers, integration accounts).
- :func:`hmac_source` -- a request signed by a registered alarm source (machines, no user).

Each guard also declares the route's credential :class:`~acl.credentials.Scope` (``api`` unless
said otherwise): which kinds of credential it accepts is the credential table's answer.

The rules themselves, plain functions of a subject that replies and event filters ask too, are in
:mod:`gateway.policy.rules` (cameras, camera sources, users, sessions, events) and
:mod:`gateway.policy.incidents` (the incident workflow's who-may-do-what).
"""

from gateway.policy.guards import (
    POLICY_ATTR,
    SCOPE_ATTR,
    authenticated,
    current_subject,
    hmac_source,
    incident_rules,
    public,
    require_camera,
    require_case_intake,
    require_incident,
    require_owner_or_admin,
    require_roles,
    require_session,
    require_user_admin,
    user_may_be_managed,
)
from gateway.policy.incidents import IncidentRules
from gateway.policy.rules import may_end_session

__all__ = [
    "POLICY_ATTR",
    "SCOPE_ATTR",
    "IncidentRules",
    "authenticated",
    "current_subject",
    "hmac_source",
    "incident_rules",
    "may_end_session",
    "public",
    "require_camera",
    "require_case_intake",
    "require_incident",
    "require_owner_or_admin",
    "require_roles",
    "require_session",
    "require_user_admin",
    "user_may_be_managed",
]
