"""Live events for the console (Server-Sent Events): per user, filtered by policy, resumable."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, HTTPException, Request
from fastapi.responses import StreamingResponse

from acl.identity import Subject
from acl.models import ApiToken, User
from gateway.container import services
from gateway.events import Viewer
from gateway.policy import authenticated
from gateway.policy.rules import camera_check
from storage.db import utcnow

router = APIRouter(tags=["events"])


@router.get("/api/events", dependencies=[authenticated()])
async def events(
    request: Request, last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=20)] = None
) -> StreamingResponse:
    """``text/event-stream`` of ``incident.opened``, ``incident.cameras``, ``incident.dispatched``,
    ``incident.updated`` and ``incident.overdue`` for what this user may see; resumes after
    ``Last-Event-ID``. The stream ends when the login ends."""
    ld = services(request)
    subject: Subject = request.state.subject
    if ld.events.streams_of(subject.user_id) >= ld.settings.events.max_streams_per_user:
        raise HTTPException(429, f"at most {ld.settings.events.max_streams_per_user} event streams per user")
    last = int(last_event_id) if last_event_id and last_event_id.isdigit() else None

    async def revalidate(s: Subject) -> Subject | None:
        # A long-lived stream re-checks its login: revoked, expired or deactivated ends it.
        if s.token_id is None:
            return s
        async with ld.db.session() as db:
            tok = await db.get(ApiToken, s.token_id)
            user = await db.get(User, s.user_id)
            if tok is None or tok.revoked_at is not None or (tok.expires_at and tok.expires_at <= utcnow()):
                return None
            if user is None or not user.active:
                return None
            departments = await ld.auth.departments_of(user)
        return Subject(user.id, user.username, user.role, departments, s.token_id)

    return StreamingResponse(
        ld.events.stream(Viewer(subject, camera_check(ld.authorizer), revalidate), last),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
