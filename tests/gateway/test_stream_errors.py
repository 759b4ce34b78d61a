"""One answer for a stream that cannot start, whichever protocol asked (WHEP, HLS; snapshots share the redirect)."""

from __future__ import annotations

import pytest
from fastapi import HTTPException, Request

from camera_registry.store import NotFound
from gateway.routes.stream_errors import STREAM_REFUSALS, stream_refused
from gateway.sessions import SessionLimit
from streams import StreamUnavailable, TranscodeCapacity, UnsupportedCodec

REQUEST = Request({"type": "http", "method": "GET", "path": "/", "headers": [], "query_string": b""})


@pytest.mark.parametrize(
    ("error", "code", "headers"),
    [
        (NotFound("camera 'c' not found"), 404, None),
        (SessionLimit("op", 3), 429, None),
        (UnsupportedCodec("h265"), 415, {"Accept-Post": "application/sdp"}),
        (TranscodeCapacity("every transcoder slot is busy"), 503, {"Retry-After": "10"}),
        (StreamUnavailable("no data in time"), 503, {"Retry-After": "2"}),
    ],
)
def test_each_refusal_has_one_answer(error: Exception, code: int, headers: dict[str, str] | None) -> None:
    assert isinstance(error, STREAM_REFUSALS)
    with pytest.raises(HTTPException) as got:
        stream_refused(REQUEST, "c", error, headers={"Accept-Post": "application/sdp"})
    assert got.value.status_code == code
    assert (got.value.headers or None) == headers
    if code == 415:
        assert "h265" in got.value.detail and "transcoding is disabled" in got.value.detail


def test_anything_else_is_not_swallowed() -> None:
    with pytest.raises(KeyError):
        stream_refused(REQUEST, "c", KeyError("x"))
