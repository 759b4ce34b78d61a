"""Camera sources against a live gateway: only admins see a camera's URL, and credentials written
into a URL's query stay in the secret box (not in the database in clear, replies, exports or logs)
while the URL the gateway connects with still carries them."""

from __future__ import annotations

import asyncio
import io
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from acl.models import Role
from fixtures.camera_server import FixtureCameraServer
from gateway.cli import app as cli_app
from gateway.logs import configure_logging
from tests.live import gateway_with, start_viewer
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media

cams = cameras_fixture("h264_360p")
SECRET = "s3cret-in-query"
DVR_SECRET = "dvr-pwd-9"


@pytest.fixture
def log_text() -> Iterator[io.StringIO]:
    """Everything logged during the test, through Liandong's own text formatter."""
    buf = io.StringIO()
    root = logging.getLogger()
    level = root.level
    configure_logging("INFO", "text", stream=buf)
    try:
        yield buf
    finally:
        for h in [h for h in root.handlers if getattr(h, "_liandong", False)]:
            root.removeHandler(h)
        root.setLevel(level)


async def test_operators_get_no_source_url_and_query_credentials_stay_secret(
    tmp_path: Path, cams: FixtureCameraServer, log_text: io.StringIO, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    url = cams.url("h264_360p") + f"?user=admin&password={SECRET}"
    rule = {"subject": "role:operator", "target": "cam:cam-q", "action": "view_live"}
    async with gateway_with(data, {"cam-q": url}, rules=[rule], hub=QUICK_HUB) as (g, admin):
        op = await g.add_user("op", Role.operator)
        replies: list[str] = []
        # The same through the import (CSV) and an edit.
        csv_body = f"id,name,source_url\ncam-dvr,dvr,rtsp://10.9.9.9/cam?username=admin&pwd={DVR_SECRET}&ch=1\n"
        r = await g.client.post("/api/cameras/import", content=csv_body, headers={**admin, "Content-Type": "text/csv"})
        assert r.json()["created"] == 1, r.text
        rule = {"subject": "role:operator", "target": "cam:cam-dvr", "action": "view_live"}
        assert (await g.client.post("/api/admin/rules", json=rule, headers=admin)).status_code == 201
        r = await g.client.patch(
            "/api/cameras/cam-dvr", json={"source_url": "rtsp://10.9.9.9/cam2?username=***&pwd=***&ch=2"}, headers=admin
        )
        assert r.status_code == 200, r.text
        replies.append(r.text)

        # Admins see where a camera is (credentials masked); operators see no source at all.
        for path in ("/api/cameras", "/api/cameras/cam-q", "/api/cameras/cam-dvr"):
            r = await g.client.get(path, headers=admin)
            replies.append(r.text)
            assert "source_url" in r.text and "has_credentials" in r.text, r.text
            r = await g.client.get(path, headers=op)
            assert r.status_code == 200, r.text
            replies.append(r.text)
            assert "source_url" not in r.text and "has_credentials" not in r.text, r.text
            assert "10.9.9.9" not in r.text and str(cams.port) not in r.text
        got = (await g.client.get("/api/cameras/cam-q", headers=admin)).json()
        assert got["source_url"] == cams.url("h264_360p") + "?user=***&password=***"
        assert got["has_credentials"] is True
        dvr = (await g.client.get("/api/cameras/cam-dvr", headers=admin)).json()
        assert dvr["source_url"] == "rtsp://10.9.9.9/cam2?username=***&pwd=***&ch=2"

        # The URL the gateway connects with carries them again, and it plays.
        assert await g.ld.store.open_url("cam-q") == url
        assert await g.ld.store.open_url("cam-dvr") == f"rtsp://10.9.9.9/cam2?username=admin&pwd={DVR_SECRET}&ch=2"
        viewer = await start_viewer(g, "cam-q", op)
        try:
            await viewer.frames(2, timeout=15)
        finally:
            await viewer.close()
        # A URL with the credentials reaching a log line is redacted by the formatter.
        logging.getLogger("tests.sources").warning("would connect to %s", await g.ld.store.open_url("cam-q"))

    # Not in clear in the database file (nor its write-ahead log).
    for f in data.glob("liandong.db*"):
        raw = f.read_bytes()
        assert SECRET.encode() not in raw and DVR_SECRET.encode() not in raw, f.name
    # Exports: none without --with-credentials; with it, both (so the check above is not blind).
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(data))
    for fmt in ("json", "csv"):
        out = await asyncio.to_thread(CliRunner().invoke, cli_app, ["cameras", "export", "--format", fmt])
        assert out.exit_code == 0 and "cam-dvr" in out.output, out.output
        replies.append(out.output)
    out = await asyncio.to_thread(CliRunner().invoke, cli_app, ["cameras", "export", "--with-credentials"])
    assert SECRET in out.output and DVR_SECRET in out.output
    assert [t[:200] for t in replies if SECRET in t or DVR_SECRET in t] == []
    logs = log_text.getvalue()
    assert "would connect to" in logs and "password=***" in logs
    assert SECRET not in logs and DVR_SECRET not in logs
