"""Recordings of a camera: what exists (ranges and gaps), playback as HLS VOD, export as one MP4 with
a signed manifest, and manual recordings. Every playback and export is audited (user, camera, range).

In a cluster the index names the node that wrote each segment: a playback or export asked of a node
that cannot read the files answers 307 to the node that can, as live streams go to the camera's owner
(with a stream token for the camera; the target node checks the action again and audits)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from acl.credentials import Scope
from acl.identity import Subject
from acl.models import Role
from acl.policy import Applied, PolicyError
from gateway.cluster.redirect import redirect_to_owner
from gateway.container import services
from gateway.policy import require_roles
from gateway.policy.recordings import require_recording
from recording.export import ExportEmpty
from recording.library import SpreadOverNodes
from recording.locks import LockError, lock_dict
from recording.recorder import Demand
from storage.times import parse_zoned

router = APIRouter(tags=["recordings"])
MAX_EXPORT_S = 24 * 3600
M3U8 = "application/vnd.apple.mpegurl"


def _time(name: str, text: str | None, default: float | None = None) -> float:
    if text is None or text == "":
        if default is None:
            raise HTTPException(422, [{"field": name, "message": "required: an ISO 8601 time with a zone"}])
        return default
    try:
        return parse_zoned(text).timestamp()
    except ValueError as e:
        raise HTTPException(422, [{"field": name, "message": str(e)}]) from None


def _range(start: str | None, end: str | None, *, default_span: float | None = None) -> tuple[float, float]:
    now = time.time()
    hi = _time("end", end, now)
    lo = _time("start", start, None if default_span is None else hi - default_span)
    if hi <= lo:
        raise HTTPException(422, [{"field": "end", "message": "must be after start"}])
    return lo, hi


async def _camera(request: Request, camera_id: str) -> None:
    try:
        await services(request).store.get(camera_id)
    except LookupError as e:
        raise HTTPException(404, str(e)) from None


async def _audit(request: Request, kind: str, subject: Subject, camera_id: str, lo: float, hi: float) -> None:
    incident = request.state.recording_incident
    detail = f"range={lo:.3f}..{hi:.3f}" + (f" incident={incident}" if incident else "")
    await services(request).audit.record(kind, subject=subject, camera_id=camera_id, detail=detail)


async def _elsewhere(
    request: Request,
    subject: Subject,
    camera_id: str,
    lo: float | None = None,
    hi: float | None = None,
    node_id: str | None = None,
) -> Response | None:
    """A 307 to the node holding the files of [lo, hi) (or of one segment, ``node_id``); None: serve here."""
    ld = services(request)
    if node_id is None:
        assert lo is not None and hi is not None
        try:
            node_id = await ld.recordings.held_by(camera_id, lo, hi, request.state.recording_incident)
        except SpreadOverNodes as e:
            raise HTTPException(409, str(e)) from None
        if node_id is None:
            return None
    url: str | None = None
    if ld.cluster is not None:
        try:
            url = (await ld.cluster.ownership.live_nodes()).get(node_id)
        except Exception:  # Redis away: nobody to ask where the node is
            url = None
    if url is None:
        raise HTTPException(
            503, f"the recordings are on node '{node_id}', which is not reachable now", headers={"Retry-After": "10"}
        )
    return redirect_to_owner(request, url.rstrip("/"), camera_id, subject)


ELSEWHERE: dict[int | str, dict[str, Any]] = {
    307: {"description": "another node holds the files: repeat the request there (cluster; a stream token added)"},
    409: {"description": "the range's files are on several nodes without shared storage"},
    503: {"description": "the node holding the files is not reachable (Retry-After)"},
}

Start = Annotated[str | None, Query(description="ISO 8601 with a zone; default: 24 h before end")]
End = Annotated[str | None, Query(description="ISO 8601 with a zone; default: now")]
Incident = Annotated[str | None, Query(description="Only this incident's recordings (what an incident grant opens)")]


@router.get("/api/cameras/{camera_id}/recordings")
async def list_recordings(
    request: Request,
    camera_id: str,
    start: Start = None,
    end: End = None,
    incident: Incident = None,
    subject: Subject = require_recording("playback"),
) -> dict[str, Any]:
    """Recorded ranges, gaps and segments of the camera in [start, end), and whether it records now."""
    await _camera(request, camera_id)
    lo, hi = _range(start, end, default_span=24 * 3600)
    ld = services(request)
    out = await ld.recordings.listing(camera_id, lo, hi, request.state.recording_incident)
    out["now"] = ld.recorder.status(camera_id)
    return out


@router.get("/api/cameras/{camera_id}/recordings/index.m3u8", responses=ELSEWHERE)
async def playback_playlist(
    request: Request,
    camera_id: str,
    start: Start = None,
    end: End = None,
    incident: Incident = None,
    subject: Subject = require_recording("playback", Scope.stream_entry),
) -> Response:
    """Play [start, end) as HLS VOD (fMP4; the player starts exactly at ``start``)."""
    await _camera(request, camera_id)
    lo, hi = _range(start, end)
    if (away := await _elsewhere(request, subject, camera_id, lo, hi)) is not None:
        return away
    inc = request.state.recording_incident
    # The segments are asked for with what opened the playlist: the incident, and a redirect's stream token.
    query = [(k, v) for k, v in (("incident", inc), ("token", request.query_params.get("token"))) if v]
    uri = "segments/{id}.mp4" + (f"?{urlencode(query)}" if query else "")
    text = await services(request).recordings.playlist(camera_id, lo, hi, uri, inc)
    if text is None:
        raise HTTPException(404, "nothing is recorded in this range")
    await _audit(request, "recording.playback", subject, camera_id, lo, hi)
    return Response(text, media_type=M3U8, headers={"Cache-Control": "no-store"})


@router.get("/api/cameras/{camera_id}/recordings/segments/{segment_id}.mp4", responses=ELSEWHERE)
async def playback_segment(
    request: Request,
    camera_id: str,
    segment_id: int,
    incident: Incident = None,
    subject: Subject = require_recording("playback", Scope.stream_entry),
) -> Response:
    """A segment file (byte ranges: the playlist names its init and media parts)."""
    ld = services(request)
    row = await ld.recordings.segment(camera_id, segment_id, request.state.recording_incident)
    if row is None:
        raise HTTPException(404, f"no segment {segment_id} of camera '{camera_id}'")
    if row.node != ld.recordings.node and not await asyncio.to_thread(ld.recordings.is_here, row):
        away = await _elsewhere(request, subject, camera_id, node_id=row.node)
        assert away is not None
        return away
    path = ld.recordings.root / row.path
    if not path.is_file():
        raise HTTPException(404, f"segment {segment_id} is not stored on this node ({row.node})")
    return FileResponse(path, media_type="video/mp4", headers={"Cache-Control": "private, max-age=3600"})


async def _export(request: Request, subject: Subject, camera_id: str, start: str | None, end: str | None) -> Any:
    """The clip of the range, or the 307 to the node holding its files."""
    await _camera(request, camera_id)
    lo, hi = _range(start, end)
    if hi - lo > MAX_EXPORT_S:
        raise HTTPException(422, [{"field": "end", "message": f"an export spans at most {MAX_EXPORT_S // 3600} h"}])
    if (away := await _elsewhere(request, subject, camera_id, lo, hi)) is not None:
        return away
    ld = services(request)
    try:
        clip = await ld.recordings.export(
            camera_id, lo, hi, user=subject.username, incident=request.state.recording_incident
        )
    except ExportEmpty as e:
        raise HTTPException(404, str(e)) from None
    await _audit(request, "recording.export", subject, camera_id, lo, hi)
    return clip


@router.get("/api/cameras/{camera_id}/recordings/export.mp4", responses=ELSEWHERE)
async def export_clip(
    request: Request,
    camera_id: str,
    start: Start = None,
    end: End = None,
    incident: Incident = None,
    subject: Subject = require_recording("export", Scope.stream_entry),
) -> Response:
    """[start, end) as one MP4, remuxed (never re-encoded), from the keyframe at or before ``start``."""
    clip = await _export(request, subject, camera_id, start, end)
    if isinstance(clip, Response):
        return clip
    name = f"{camera_id}-{clip.manifest['clip']['start'][:19].replace(':', '')}.mp4"
    return FileResponse(
        clip.path,
        media_type="video/mp4",
        filename=name,
        headers={"X-Clip-Sha256": clip.manifest["clip"]["sha256"], "Cache-Control": "no-store"},
    )


@router.get("/api/cameras/{camera_id}/recordings/export.json", responses=ELSEWHERE)
async def export_manifest(
    request: Request,
    camera_id: str,
    start: Start = None,
    end: End = None,
    incident: Incident = None,
    subject: Subject = require_recording("export", Scope.stream_entry),
) -> Response:
    """The signed manifest of the same range's clip: source segments and their sha256, the clip's
    sha256, the range, camera, incident, exporting user and time (``liandong evidence verify``)."""
    clip = await _export(request, subject, camera_id, start, end)
    if isinstance(clip, Response):
        return clip
    return JSONResponse(clip.manifest, headers={"Cache-Control": "no-store"})


class ManualRecording(BaseModel):
    """A manual recording's length."""

    model_config = ConfigDict(extra="forbid")
    seconds: float = Field(300.0, gt=0, description="How long to record (at most recording.manual_max_s).")


@router.post("/api/cameras/{camera_id}/recordings/manual", status_code=202)
async def start_manual(
    request: Request, camera_id: str, body: ManualRecording, subject: Subject = require_recording("record")
) -> dict[str, Any]:
    """Record the camera for ``seconds`` (an operator's recording from a tile; the GOP cache is its pre-roll)."""
    await _camera(request, camera_id)
    ld = services(request)
    if not ld.settings.recording.enabled:
        raise HTTPException(503, "recording is disabled (recording.enabled)")
    limit = ld.settings.recording.manual_max_s
    if body.seconds > limit:
        raise HTTPException(422, [{"field": "seconds", "message": f"at most {limit:g} (recording.manual_max_s)"}])
    until = time.time() + body.seconds
    ld.recorder.record(camera_id, Demand(f"manual:{subject.username}", "manual", until))
    await ld.audit.record("recording.manual", subject=subject, camera_id=camera_id, detail=f"seconds={body.seconds:g}")
    return {"camera_id": camera_id, "until": until, "now": ld.recorder.status(camera_id)}


@router.delete("/api/cameras/{camera_id}/recordings/manual", status_code=204)
async def stop_manual(request: Request, camera_id: str, subject: Subject = require_recording("record")) -> Response:
    """End the caller's manual recording of the camera (others' recordings of it go on)."""
    ld = services(request)
    if not ld.recorder.release(f"manual:{subject.username}", camera_id):
        raise HTTPException(404, "you are not recording this camera")
    await ld.audit.record("recording.manual_stop", subject=subject, camera_id=camera_id)
    return Response(status_code=204)


class LockBody(BaseModel):
    """An evidence lock: a range of the camera retention must keep, and why."""

    model_config = ConfigDict(extra="forbid")
    start: str = Field(description="ISO 8601 with a zone")
    end: str = Field(description="ISO 8601 with a zone")
    reason: str = Field(min_length=1, max_length=500)


class LiftBody(BaseModel):
    """Why a lock is lifted."""

    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=500)


@router.post("/api/cameras/{camera_id}/recordings/locks", status_code=201)
async def add_lock(
    request: Request, camera_id: str, body: LockBody, subject: Subject = require_roles(Role.security_admin)
) -> dict[str, Any]:
    """Lock a range (security admins): its segments are never deleted by retention, quota or low space.
    The lock is a policy revision (author, reason, the lock in its diff); a rollback does not lift it."""
    await _camera(request, camera_id)
    lo, hi = _range(body.start, body.end)
    ld = services(request)
    made: list[dict[str, Any]] = []

    async def write(s: AsyncSession) -> dict[str, Any]:
        made.append(lock_dict(await ld.recordings.locks.add_in(s, camera_id, lo, hi, body.reason, subject.username)))
        return made[0]

    what = f"lock recordings of {camera_id} {lo:.3f}..{hi:.3f}"
    applied = await _revision(request, subject, what, body.reason, "evidence_lock", "add", write)
    lock = made[0]
    await ld.audit.record(
        "recording.lock", subject=subject, camera_id=camera_id, detail=f"lock={lock['id']} range={lo:.3f}..{hi:.3f}"
        f" revision={applied.revision} reason={body.reason}",
    )  # fmt: skip
    return {**lock, "revision": applied.revision}


async def _revision(
    request: Request,
    subject: Subject,
    what: str,
    reason: str,
    kind: str,
    op: str,
    write: Callable[[AsyncSession], Awaitable[dict[str, Any]]],
) -> Applied:
    """``write`` as one policy revision (``PolicyStore.record``); its bad input as 422 naming the field."""
    acl = services(request).acl
    try:
        return await acl.changes.change(
            subject.username, what, lambda: acl.policy.record(subject.username, reason, kind, op, write), reason
        )
    except (LockError, PolicyError) as e:
        field, _, message = str(e).partition(": ")
        raise HTTPException(422, [{"field": field, "message": message}]) from None


@router.get("/api/recordings/locks")
async def list_locks(
    request: Request, camera_id: str | None = None, subject: Subject = require_roles(Role.security_admin, Role.auditor)
) -> list[dict[str, Any]]:
    """Standing evidence locks (of one camera, or all)."""
    return [lock_dict(lk) for lk in await services(request).recordings.locks.standing(camera_id)]


@router.post("/api/recordings/locks/{lock_id}/lift")
async def lift_lock(
    request: Request, lock_id: int, body: LiftBody, subject: Subject = require_roles(Role.security_admin)
) -> dict[str, Any]:
    """Lift a lock (security admins), with a reason, as a policy revision; the lock stays on record."""
    ld = services(request)

    async def write(s: AsyncSession) -> dict[str, Any]:
        lock = await ld.recordings.locks.lift_in(s, lock_id, body.reason, subject.username)
        if lock is None:
            raise LookupError(lock_id)
        return lock_dict(lock)

    try:
        applied = await _revision(request, subject, f"unlock recordings lock {lock_id}", body.reason,
                                  "evidence_lock", "remove", write)  # fmt: skip
    except LookupError:
        raise HTTPException(404, f"no standing lock {lock_id}") from None
    lock = applied.changes[0].row
    await ld.audit.record(
        "recording.unlock",
        subject=subject,
        camera_id=lock["camera_id"],
        detail=f"lock={lock_id} revision={applied.revision} reason={body.reason}",
    )
    return {**lock, "revision": applied.revision}
