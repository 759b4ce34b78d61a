"""Probing real sources: online H.264/H.265 fixture mounts, a closed port, and no leaked credentials."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fixtures.camera_server import FixtureCameraServer, free_port
from gateway.cli import app

pytestmark = pytest.mark.media
SECRET = "probe-secret-123"


def test_probe_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    monkeypatch.setenv("LIANDONG_DATA_DIR", str(tmp_path / "data"))
    closed = free_port()
    with FixtureCameraServer(mounts=("h264", "h265")) as cams:
        inv = [
            {"id": "on-264", "name": "a", "source_url": cams.url("h264", f"u:{SECRET}")},
            {"id": "on-265", "name": "b", "source_url": cams.url("h265")},
            {"id": "gone", "name": "c", "source_url": f"rtsp://u:{SECRET}@127.0.0.1:{closed}/x"},
            {"id": "no-mount", "name": "d", "source_url": f"rtsp://u:{SECRET}@127.0.0.1:{cams.port}/nosuch"},
        ]
        f = tmp_path / "inv.json"
        f.write_text(json.dumps(inv), encoding="utf-8")
        runner = CliRunner()
        assert runner.invoke(app, ["cameras", "import", str(f)]).exit_code == 0
        r = runner.invoke(app, ["cameras", "probe", "--all", "--json", "--timeout", "4"])
        assert r.exit_code == 0, r.output
        line = next(ln for ln in r.output.splitlines() if ln.startswith("["))
        res = {x["camera_id"]: x for x in json.loads(line)}
    assert res["on-264"]["status"] == "online"
    assert (res["on-264"]["codec"], res["on-264"]["width"], res["on-264"]["height"]) == ("h264", 1280, 720)
    assert res["on-265"]["codec"] == "hevc"
    assert res["gone"]["status"] == "offline" and res["gone"]["reason"] == "connection refused"
    assert res["no-mount"]["status"] == "error" and "404" in res["no-mount"]["reason"]
    assert SECRET not in r.output and SECRET not in caplog.text
    exported = runner.invoke(app, ["cameras", "export", "--format", "json"]).output
    assert SECRET not in exported
    r = runner.invoke(app, ["cameras", "probe", "nosuch"])
    assert r.exit_code != 0 and "not found" in r.output


def test_reasons_ignore_the_url_in_ffmpeg_errors() -> None:
    from camera_registry.probe import classify_error

    class FFmpegLike(Exception):
        pass

    e = FFmpegLike("Server returned 404 Not Found: 'rtsp://u:p@127.0.0.1:34012/nosuch'")
    e.strerror = "Server returned 404 Not Found"  # type: ignore[attr-defined]
    assert classify_error(e)[1] == "stream not found (404)"  # the port's "401" does not count
    e2 = FFmpegLike("Server returned 401 Unauthorized (authorization failed)")
    assert classify_error(e2)[1] == "authentication failed (401)"
    e3 = FFmpegLike("Invalid data found when processing input: 'rtsp://u:p@10.0.0.1:4012/x'")
    assert classify_error(e3)[1] == "probe failed (FFmpegLike)"


def test_silent_camera_is_offline_after_the_timeout(caplog: pytest.LogCaptureFixture) -> None:
    """A host that accepts the TCP connection but never answers RTSP: offline within the timeout."""
    import socket
    import threading

    from camera_registry.models import CameraStatus
    from camera_registry.probe import probe_url

    caplog.set_level(logging.DEBUG)
    accepted: list[socket.socket] = []
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        srv.settimeout(5)
        port = srv.getsockname()[1]
        t = threading.Thread(target=lambda: accepted.append(srv.accept()[0]), daemon=True)
        t.start()
        res = probe_url("mute", f"rtsp://u:{SECRET}@127.0.0.1:{port}/live", timeout_s=1.0)
        t.join(5)
    for c in accepted:
        c.close()
    assert accepted, "the probe never connected"
    assert (res.status, res.reason) == (CameraStatus.offline, "no answer within 1 s")
    assert 0.9 <= res.elapsed_s < 2.5
    assert SECRET not in caplog.text


def test_protocol_whitelist_refuses_a_real_local_file(tmp_path: Path) -> None:
    """Defence in depth: even if a file: URL got past validation, FFmpeg would not open it."""
    import av
    import numpy as np

    from camera_registry.models import CameraStatus
    from camera_registry.probe import probe_url

    clip = tmp_path / "clip.mp4"
    with av.open(str(clip), "w") as out:
        s = out.add_stream("mpeg4", rate=5)
        s.width, s.height = 64, 48
        for _ in range(5):
            frame = av.VideoFrame.from_ndarray(np.zeros((48, 64, 3), np.uint8), format="rgb24")
            for pkt in s.encode(frame):
                out.mux(pkt)
        for pkt in s.encode():
            out.mux(pkt)
    with av.open(str(clip)) as c:  # the file itself is fine
        assert c.streams.video[0].codec_context.width == 64
    for url in (f"file:{clip}", str(clip), f"concat:{clip}|{clip}"):
        res = probe_url("f", url, timeout_s=2)
        assert res.status is not CameraStatus.online, url
        assert res.codec is None
