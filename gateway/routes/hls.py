"""Low-latency HLS: ``/api/cameras/{id}/hls/index.m3u8`` and the playlist, init, segments and parts it names."""

from __future__ import annotations

import re

from fastapi import APIRouter, HTTPException, Query, Request, Response, status

from acl.credentials import Scope
from acl.identity import Subject
from gateway.container import services
from gateway.hls.service import SessionGone
from gateway.policy import require_camera
from gateway.routes.stream_errors import REFUSAL_RESPONSES, STREAM_REFUSALS, stream_refused
from streams import Variant

router = APIRouter(tags=["hls"])

_NAME = re.compile(r"^(?:(stream)\.m3u8|init(\d{1,6})\.mp4|seg(\d{1,12})\.m4s|part(\d{1,12})\.m4s)$")
PLAYLIST = "application/vnd.apple.mpegurl"
_NO_STORE = {"Cache-Control": "no-cache, no-store"}
_MEDIA_CACHE = {"Cache-Control": "private, max-age=60"}


def _hls(request: Request):  # type: ignore[no-untyped-def]
    ld = services(request)
    if ld.hls is None or not ld.settings.hls.enabled:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, "HLS is disabled on this gateway; use WebRTC")
    return ld.hls


@router.get(
    "/api/cameras/{camera_id}/hls/index.m3u8",
    dependencies=[require_camera("view_live", Scope.stream_entry)],
    responses={200: {"content": {PLAYLIST: {}}}, **REFUSAL_RESPONSES},
)
async def hls_index(request: Request, camera_id: str, variant: Variant = Variant.auto) -> Response:
    """Start watching: opens a viewer session and answers the multivariant playlist.

    Native players without a login can pass ``?token=`` (``POST /api/auth/stream-token/{camera_id}``).
    """
    hls = _hls(request)
    ld = services(request)
    subject: Subject = request.state.subject
    try:
        cam = await ld.store.get(camera_id)
        session, mux = await hls.open_session(
            camera_id, variant, subject, request.client.host if request.client else None, cam.codec
        )
    except STREAM_REFUSALS as e:  # a 307 when another node pulls the camera: the player continues there
        return stream_refused(request, camera_id, e)
    p = mux.params
    assert p is not None
    bandwidth = max(int(ld.hub.describe(camera_id).get("bitrate_bps") or 0), 500_000)
    body = (
        "#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-INDEPENDENT-SEGMENTS\n"
        f'#EXT-X-STREAM-INF:BANDWIDTH={bandwidth},CODECS="{p.codec_string}",RESOLUTION={p.width}x{p.height}\n'
        f"stream.m3u8?s={session.key}\n"
    )
    # The console ends its session with DELETE /api/sessions/{id} when the tile closes.
    return Response(body, media_type=PLAYLIST, headers={**_NO_STORE, "X-Liandong-Session": session.session_id})


@router.get(
    "/api/cameras/{camera_id}/hls/{name}",
    dependencies=[require_camera("view_live", Scope.hls_files)],
    responses={
        200: {"content": {PLAYLIST: {}, "video/mp4": {}}},
        400: {"description": "bad blocking-reload parameters"},
        404: {"description": "no such file"},
        410: {"description": "the session ended (revoked, logged out, idle)"},
    },
)
async def hls_file(
    request: Request,
    camera_id: str,
    name: str,
    s: str = Query("", max_length=64, description="The session key from index.m3u8."),
    msn: int | None = Query(None, alias="_HLS_msn", ge=0, le=10**12),
    part: int | None = Query(None, alias="_HLS_part", ge=0, le=10**6),
) -> Response:
    """The media playlist (blocking reload with ``_HLS_msn``/``_HLS_part``), init segment, segments and parts."""
    hls = _hls(request)
    m = _NAME.match(name)
    if m is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, "no such HLS file")
    subject: Subject = request.state.subject
    try:
        session, mux = hls.touch(s, camera_id, subject)
    except SessionGone as e:
        raise HTTPException(status.HTTP_410_GONE, str(e)) from None
    except LookupError as e:
        raise HTTPException(status.HTTP_404_NOT_FOUND, str(e)) from None
    timeout = hls.settings.block_timeout_s
    if m.group(1):
        if part is not None and msn is None:
            raise HTTPException(status.HTTP_400_BAD_REQUEST, "_HLS_part: needs _HLS_msn")
        if msn is not None:
            last = mux.segments[-1].msn if mux.segments else 0
            if msn > last + 2:
                raise HTTPException(status.HTTP_400_BAD_REQUEST, f"_HLS_msn: {msn} is too far ahead (last is {last})")
            if not await mux.wait(lambda: mux.has(msn, part), timeout):
                raise HTTPException(
                    status.HTTP_503_SERVICE_UNAVAILABLE, "the requested part did not arrive in time", headers=_NO_STORE
                )
        else:
            # A fresh muxer has parts but no whole segment yet: players that read only segments
            # (ffmpeg, VLC, native players) give up on such a playlist, so the first load waits for one.
            await mux.wait(lambda: any(x.complete for x in mux.segments), timeout)
        body = mux.media_playlist(f"?s={session.key}")
        hls.sent(session, len(body))
        return Response(body, media_type=PLAYLIST, headers=_NO_STORE)
    data: bytes | None
    if m.group(2):
        data = mux.init(int(m.group(2)))
        ctype = "video/mp4"
    elif m.group(3):
        n = int(m.group(3))

        def seg_ready() -> bool:
            seg = mux.segment(n)
            return seg is not None and seg.complete

        if mux.has(n - 1, None) or mux.segment(n):  # the segment being made, or just made: wait for it
            await mux.wait(seg_ready, timeout)
        seg = mux.segment(n)
        data = seg.data if seg is not None and seg.complete else None
        ctype = "video/iso.segment"
    else:
        n = int(m.group(4))
        if mux.next_part <= n <= mux.next_part + 1:  # the preload hint: answer as soon as it exists
            await mux.wait(lambda: mux.part(n) is not None, timeout)
        found = mux.part(n)
        data = found.data if found is not None else None
        ctype = "video/iso.segment"
    if not data:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"{name} is not available (too old, or not yet made)")
    hls.sent(session, len(data))
    return Response(data, media_type=ctype, headers=_MEDIA_CACHE)
