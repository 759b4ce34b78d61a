"""Cases: opening one (call-takers, integration accounts), the reporter in full (audited), photos,
the category table with its deadlines, and the monthly statistics' export (XLSX or CSV)."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from acl.identity import Subject
from acl.models import Role
from gateway.alarms.cases import CaseError, parse_case
from gateway.alarms.categories import Category, CategoryError
from gateway.alarms.incidents import WorkflowError, incident_dict
from gateway.alarms.photos import PhotoError
from gateway.alarms.stats import StatsError, to_csv, to_xlsx
from gateway.container import services
from gateway.policy import authenticated, incident_rules, require_case_intake, require_incident, require_roles
from gateway.policy.rules import viewable_incident

router = APIRouter(tags=["cases"])
StatsBy = Literal["subdistrict", "station", "department"]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def _unprocessable(e: ValueError) -> HTTPException:
    field, _, msg = str(e).partition(": ")
    return HTTPException(422, [{"field": field, "message": msg}])


@router.post("/api/incidents", status_code=201, dependencies=[require_case_intake()])
async def open_case(request: Request) -> dict[str, Any]:
    """Open a case: ``{category, text, subdistrict?, neighbourhood?, address?, lat?, lon?,
    reporter_name?, reporter_phone?, origin?}`` (``origin``: hotline or patrol; an integration
    account's cases are ``api``). The address picks the sub-district and station; with coordinates
    the cameras around open like an alarm's. The reply shows the reporter in full to its creator."""
    ld = services(request)
    subject: Subject = request.state.subject
    try:
        doc = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise HTTPException(422, [{"field": "body", "message": "invalid JSON"}]) from None
    try:
        case = parse_case(doc)
        if subject.role is Role.integration:
            case["origin"] = "api"
        elif case["origin"] == "api":
            raise CaseError("origin: hotline or patrol (api is for integration accounts)")
    except CaseError as e:
        raise _unprocessable(e) from None
    inc = await ld.alarms.cases.create(case, subject.username)
    await ld.audit.record(
        "incident_opened", subject=subject, incident_id=inc.id, detail=f"{case['origin']} {case['category']}"
    )
    out = viewable_incident(ld.authorizer, subject, incident_dict(inc))
    out["reporter"] = ld.alarms.cases.reporter(inc, full=True)
    out["actions"] = incident_rules(request).next_actions(subject, inc)
    return out


@router.get("/api/incidents/{incident_id}/reporter", dependencies=[require_incident("reporter")])
async def case_reporter(request: Request, incident_id: str) -> dict[str, Any]:
    """The reporter's name and phone in full: the case's handlers and its creator only; every view is
    audited."""
    ld = services(request)
    inc = request.state.incident
    await ld.audit.record("incident_reporter_viewed", subject=request.state.subject, incident_id=inc.id)
    return {"incident_id": inc.id, "reporter": ld.alarms.cases.reporter(inc, full=True)}


class CategoryBody(BaseModel):
    """A category and its deadlines in hours."""

    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=32)
    label: str = Field("", max_length=128)
    onsite_hours: float
    resolve_hours: float


def _category(c: Category) -> dict[str, Any]:
    return {"name": c.name, "label": c.label, "onsite_hours": c.onsite_hours, "resolve_hours": c.resolve_hours}


@router.get("/api/incident-categories", dependencies=[authenticated()])
async def list_categories(request: Request) -> dict[str, Any]:
    """The stored categories and the defaults for any other (``*``)."""
    table = services(request).alarms.categories
    await table.load()
    default = table.get("*")
    return {
        "categories": [_category(c) for c in table.all()],
        "default": {"onsite_hours": default.onsite_hours, "resolve_hours": default.resolve_hours},
    }


@router.put("/api/incident-categories", dependencies=[require_roles(Role.security_admin)])
async def put_categories(request: Request, body: list[CategoryBody]) -> dict[str, Any]:
    """Replace the category table (all or nothing); deadlines apply to cases dispatched from now on."""
    ld = services(request)
    try:
        cats = await ld.alarms.categories.replace([b.model_dump() for b in body], request.state.subject.username)
    except CategoryError as e:
        raise _unprocessable(e) from None
    await ld.audit.record(
        "incident_categories_changed",
        subject=request.state.subject,
        detail=", ".join(f"{c.name} {c.onsite_hours:g}/{c.resolve_hours:g}h" for c in cats),
    )
    return await list_categories(request)


async def stats_table(request: Request, month: str, by: str, daily: bool) -> dict[str, Any]:
    """The statistics table of ``month`` for the caller's subtree (see :mod:`gateway.alarms.stats`)."""
    ld = services(request)
    rules = incident_rules(request)
    units = ld.alarms.org.units()
    try:
        table = await ld.alarms.stats.table(
            month,
            by,
            rules.stats_scope(request.state.subject),
            department_ids={u.id for u in units.values() if u.level == "department"},
            daily=daily,
        )
    except StatsError as e:
        raise _unprocessable(e) from None
    names = {u.id: u.name for u in units.values() if u.name}
    for row in [*table["units"], *table.get("days", [])]:
        row["name"] = names.get(row["unit"], row["unit"])
    return table


@router.get("/api/incidents/stats/export", dependencies=[authenticated()])
async def export_stats(
    request: Request,
    month: Annotated[str, Query(max_length=7, description="YYYY-MM (local), or a year YYYY")],
    by: Annotated[StatsBy, Query()] = "subdistrict",
    format: Annotated[Literal["xlsx", "csv"], Query()] = "xlsx",
    daily: Annotated[bool, Query(description="XLSX: a second sheet per day and unit")] = False,
) -> Response:
    """The month's statistics as a download: XLSX (the ranked units; with ``daily``, then per day
    and unit) or CSV (the ranked units)."""
    table = await stats_table(request, month, by, daily=daily and format == "xlsx")
    names = {r["unit"]: r["name"] for r in table["units"]}
    await services(request).audit.record(
        "incident_stats_exported", subject=request.state.subject, detail=f"{month} {by} {format}"
    )
    filename = f"cases-{month}-{by}.{format}"
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    if format == "csv":
        return Response(to_csv(table, names), media_type="text/csv; charset=utf-8", headers=headers)
    return Response(to_xlsx(table, names), media_type=XLSX, headers=headers)


@router.post("/api/incidents/{incident_id}/photos", status_code=201, dependencies=[require_incident("note")])
async def add_photo(
    request: Request, incident_id: str, text: Annotated[str | None, Query(min_length=1, max_length=500)] = None
) -> dict[str, Any]:
    """Attach a photo (the request body: JPEG or PNG bytes, at most ``alarms.attachment_max_bytes``)
    with an optional note; whoever may add a note may add a photo. Listed on the case, audited."""
    ld = services(request)
    inc = request.state.incident
    try:
        meta = await ld.alarms.photos.save(inc.id, await request.body())
        entry = await ld.alarms.incidents.add_attachment(inc.id, request.state.subject.username, meta, text)
    except PhotoError as e:
        raise _unprocessable(e) from None
    except WorkflowError as e:
        raise HTTPException(409, [{"field": "action", "message": str(e).partition(": ")[2]}]) from None
    return {k: entry[k] for k in ("n", "type", "size", "at", "by", "text") if k in entry}


@router.get("/api/incidents/{incident_id}/photos/{n}", dependencies=[require_incident()])
async def get_photo(request: Request, incident_id: str, n: int) -> Response:
    """One of the case's photos, for whoever may see the case."""
    inc = request.state.incident
    meta = next((a for a in inc.attachments if a.get("n") == n), None)
    if meta is None:
        raise HTTPException(404, f"no photo {n} on '{incident_id}'")
    data = await services(request).alarms.photos.read(inc.id, meta)
    return Response(data, media_type=str(meta["type"]), headers={"Cache-Control": "private, max-age=3600"})
