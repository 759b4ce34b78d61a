"""Who may list, play back, export or start a recording of a camera.

``playback``, ``export`` and ``record`` are actions of their own in the viewing policy (see
:mod:`acl.index`): a user who may view a camera live may not necessarily play it back. An incident
grant includes playback of that incident's recordings and no others: with ``?incident=ID`` a user
who may see the incident plays back the segments recorded for it, of the incident's cameras.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, HTTPException, Request, status

from acl.credentials import Scope
from acl.identity import Subject
from gateway.container import services
from gateway.policy.guards import _mark, _subject_in, incident_rules

__all__ = ["require_recording"]


def require_recording(action: str, scope: Scope = Scope.api) -> Any:
    """``acl.authorize(subject, action, camera_id)``; for ``playback`` also the incident rule above.
    Leaves ``request.state.recording_incident``: the incident whose segments alone the caller may
    reach (None: every segment of the camera). Denials answer 403 and are audited.

    Playback and export files are ``Scope.stream_entry``: besides a login, the stream token of a
    307 to the node holding the files (bound to the camera) authenticates the repeated request; the
    action is checked for its user all the same."""

    async def _recording(request: Request, camera_id: str, subject: Subject = Depends(_subject_in(scope))) -> Subject:
        ld = services(request)
        incident = request.query_params.get("incident") or None
        request.state.recording_incident = incident
        if ld.authorizer.authorize(subject, action, camera_id):
            return subject
        if action == "playback" and incident is not None:
            rules = incident_rules(request)
            inc = await rules.flow.get(incident)
            if inc is not None and camera_id in inc.cameras and rules.may_act(subject, "view", inc):
                return subject
        await ld.audit_denied(request, subject, action, camera_id)
        raise HTTPException(status.HTTP_403_FORBIDDEN, f"not permitted: {action} on camera '{camera_id}'")

    return Depends(_mark(_recording, f"recording:{action}", scope))
