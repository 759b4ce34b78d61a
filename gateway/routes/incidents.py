"""Incidents: the list and statistics, one incident, and the workflow steps."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request, Response
from pydantic import BaseModel, ConfigDict, Field

from acl.identity import Subject
from gateway.alarms.incidents import WorkflowError, incident_dict
from gateway.alarms.notices import notice_dict
from gateway.container import services
from gateway.policy import authenticated, incident_rules, require_incident
from gateway.policy.rules import viewable_incident
from gateway.routes.cases import StatsBy, stats_table
from gateway.routes.params import ZonedSince

router = APIRouter(prefix="/api/incidents", tags=["incidents"])

Action = Literal[
    "dispatch", "acknowledge", "onsite", "resolve", "confirm", "verify", "close", "reopen", "escalate", "note"
]


def _reply(request: Request, inc: Any) -> dict[str, Any]:
    """An incident as the caller may see it: only the cameras they may view, the reporter masked."""
    ld = services(request)
    out = viewable_incident(ld.authorizer, request.state.subject, incident_dict(inc))
    out["reporter"] = ld.alarms.cases.reporter(inc, full=False)
    return out


@router.get("", dependencies=[authenticated()])
async def list_incidents(
    request: Request,
    response: Response,
    state: Annotated[str | None, Query(max_length=16, description="a state, or 'open'")] = None,
    area: Annotated[str | None, Query(max_length=64)] = None,
    department: Annotated[str | None, Query(max_length=64, description="dispatched to")] = None,
    overdue: Annotated[bool | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """The newest ``limit`` incidents the caller may see (fewer only when there are no more). At most
    50,000 incidents are read per request; a list cut short by that bound carries the header
    ``X-Incidents-Incomplete: 1``."""
    rules = incident_rules(request)
    subject: Subject = request.state.subject
    rows, complete = await rules.flow.visible(
        lambda i: rules.may_see(subject, i), state=state, area=area, department=department, overdue=overdue, limit=limit
    )
    if not complete:
        response.headers["X-Incidents-Incomplete"] = "1"
    return [{**_reply(request, i), "actions": rules.next_actions(subject, i)} for i in rows]


@router.get("/stats", dependencies=[authenticated()])
async def incident_stats(
    request: Request,
    since: ZonedSince = None,
    month: Annotated[str | None, Query(max_length=7, description="YYYY-MM (local), or a year YYYY")] = None,
    by: Annotated[StatsBy, Query(description="with month: group by this kind of unit")] = "subdistrict",
    daily: Annotated[bool, Query(description="with month: also per day")] = False,
) -> dict[str, Any]:
    """With ``month``: per sub-district, station or department (``by``) received, dispatched, on site
    and resolved in time %, closed, overdue (ever), ranked, over the cases of the caller's subtree
    (computed in SQL). Without: the dashboard's counts per sub-district and per department (total,
    open, handled %, overdue now) over the incidents the caller may see."""
    rules = incident_rules(request)
    subject: Subject = request.state.subject
    if month is not None:
        return await stats_table(request, month, by, daily)
    return dict(await rules.flow.stats(since, lambda i: rules.may_see(subject, i)))


@router.get("/{incident_id}", dependencies=[require_incident()])
async def get_incident(request: Request, incident_id: str) -> dict[str, Any]:
    """One incident with its history, and the steps the caller may take now."""
    inc = request.state.incident
    actions = incident_rules(request).next_actions(request.state.subject, inc)
    notices = [notice_dict(n) for n in await services(request).notices.for_incident(inc.id)]
    return {**_reply(request, inc), "actions": actions, "notices": notices}


class StepBody(BaseModel):
    """A workflow step: ``department`` to dispatch to; ``result`` of the reporter's call-back
    (confirm); ``passed`` and ``text`` of the verification; ``text`` for notes."""

    model_config = ConfigDict(extra="forbid")
    department: str | None = Field(None, max_length=64)
    text: str | None = Field(None, min_length=1, max_length=4000)
    result: Literal["satisfied", "unsatisfied", "unreachable"] | None = None
    passed: bool | None = None


@router.post("/{incident_id}/{action}", dependencies=[require_incident()])
async def incident_step(request: Request, incident_id: str, action: Action, body: StepBody) -> dict[str, Any]:
    """Take a step: dispatch, acknowledge, onsite, resolve, confirm (the reporter's call-back),
    verify (not by a handler), close, reopen, escalate or note. Dispatch goes only downwards or to a
    department (403 otherwise)."""
    ld = services(request)
    subject: Subject = request.state.subject
    if action == "dispatch" and body.department:
        if not incident_rules(request).may_dispatch_to(subject, request.state.incident, body.department):
            await ld.audit_denied(request, subject, "incident:dispatch", None)
            raise HTTPException(
                403, [{"field": "department", "message": "dispatch goes only downwards or to a department"}]
            )
    try:
        inc = await ld.alarms.incidents.act(incident_id, action, subject.username, body.model_dump(exclude_none=True))
    except WorkflowError as e:
        field, _, msg = str(e).partition(": ")
        raise HTTPException(409 if field == "action" else 422, [{"field": field, "message": msg}]) from None
    return _reply(request, inc)
