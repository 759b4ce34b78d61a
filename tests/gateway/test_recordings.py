"""Recording through the gateway with the real fixture camera: a manual recording and an incident's,
playback as HLS VOD (ffprobe plays it), export with a manifest that `liandong evidence verify`
accepts (and a flipped byte it rejects), the permissions (live view alone gets 403; an incident's
viewer plays back that incident's minutes and no others) and the audit of every playback and export."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from acl.audit import AuditEntry
from fixtures.camera_server import FixtureCameraServer
from gateway.cli import app as cli
from tests.live import LiveGateway, eventually, gateway_with
from tests.media import QUICK_HUB, cameras_fixture

pytestmark = pytest.mark.media
cams = cameras_fixture("h264_360p")
CAM = "cam-rec"
LAT, LON = 31.11, 121.385


def iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@pytest.fixture
async def gw(tmp_path: Path, cams: FixtureCameraServer) -> AsyncIterator[tuple[LiveGateway, dict[str, str], Path]]:
    rule = {"subject": "role:operator", "target": f"cam:{CAM}", "action": "view_live"}
    data = tmp_path / "data"
    async with gateway_with(
        data,
        {CAM: cams.url("h264_360p")},
        rules=[rule],
        hub=QUICK_HUB,
        recording={"segment_s": 2, "min_free_mb": 0, "retry_s": 0.3},
    ) as (g, admin):
        r = await g.client.patch(f"/api/cameras/{CAM}", json={"lat": LAT, "lon": LON}, headers=admin)
        assert r.status_code == 200, r.text
        yield g, admin, data


async def segments(g: LiveGateway, admin: dict[str, str], **q: str) -> list[dict[str, Any]]:
    r = await g.client.get(
        f"/api/cameras/{CAM}/recordings", params={"start": iso(time.time() - 600), **q}, headers=admin
    )
    assert r.status_code == 200, r.text
    return list(r.json()["segments"])


async def wait_segments(g: LiveGateway, admin: dict[str, str], n: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while len(got := await segments(g, admin)) < n:
        assert time.monotonic() < deadline, f"{len(got)} segments, wanted {n}"
        await asyncio.sleep(0.3)
    return got


def ffprobe(url_or_path: str, *extra: str) -> dict[str, Any]:
    out = subprocess.run(
        ["ffprobe", "-v", "error", *extra, "-show_streams", "-show_format", "-of", "json", url_or_path],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-800:]
    return json.loads(out.stdout)  # type: ignore[no-any-return]


async def test_record_play_back_export_verify_and_permissions(
    gw: tuple[LiveGateway, dict[str, str], Path], tmp_path: Path
) -> None:
    g, admin, data = gw
    viewer = await g.add_user("viewer")  # may view the camera live, nothing more

    # A manual recording (its own action: admin here), then an incident's recording of the same camera.
    r = await g.client.post(f"/api/cameras/{CAM}/recordings/manual", json={"seconds": 600}, headers=admin)
    assert r.status_code == 202, r.text
    assert (await g.client.post(f"/api/cameras/{CAM}/recordings/manual", json={}, headers=viewer)).status_code == 403
    manual = await wait_segments(g, admin, 2)
    assert (await g.client.delete(f"/api/cameras/{CAM}/recordings/manual", headers=admin)).status_code == 204
    # A panic alarm next to the camera: the incident opens it, and the recorder records it from its GOP.
    secret = await g.ld.alarms.sources.add("bus-gps")
    alarm_at = time.time()
    body = json.dumps({"alarm_id": "A-REC", "type": "panic", "lat": LAT, "lon": LON}).encode()
    ts = str(int(alarm_at))
    mac = hmac.new(secret.encode(), ts.encode() + b"." + body, hashlib.sha256).hexdigest()
    headers = {"X-Liandong-Source": "bus-gps", "X-Liandong-Timestamp": ts, "X-Liandong-Signature": f"sha256={mac}"}
    r = await g.client.post("/api/alarms", content=body, headers={**headers, "Content-Type": "application/json"})
    assert r.status_code in (200, 201, 202), r.text
    inc_id = r.json()["incident_id"]
    assert await eventually(lambda: bool(g.ld.recorder.status(CAM).get("recording")), 30)
    assert g.ld.recorder.status(CAM)["demands"][0]["incident"] == inc_id
    await wait_segments(g, admin, len(manual) + 2)
    g.ld.recorder.incident_closed(inc_id)  # what closing the incident calls (IncidentWorkflow.on_closed)
    assert await eventually(lambda: not g.ld.recorder.recording(), 30)
    await g.ld.recorder.flush_index()
    everything = await segments(g, admin)
    ours = [s for s in everything if inc_id in s["incidents"]]
    assert ours and len(ours) < len(everything)
    # Pre-roll: the cached GOP before the alarm is in the incident's first segment.
    assert ours[0]["start"].replace("+00:00", "Z") < iso(alarm_at)

    # Live view alone: no playback, no export; every refusal audited.
    for path in ("", "/index.m3u8", "/export.mp4", "/export.json", f"/segments/{ours[0]['id']}.mp4"):
        r = await g.client.get(f"/api/cameras/{CAM}/recordings{path}", headers=viewer)
        assert r.status_code == 403, (path, r.text)
    # The incident's viewer (who may view its camera) plays back its minutes and no others, never exports.
    inc = {"incident": inc_id}
    assert [s["id"] for s in await segments(g, viewer, **inc)] == [s["id"] for s in ours]
    r = await g.client.get(f"/api/cameras/{CAM}/recordings/segments/{manual[0]['id']}.mp4", params=inc, headers=viewer)
    assert r.status_code == 404
    r = await g.client.get(f"/api/cameras/{CAM}/recordings/segments/{ours[0]['id']}.mp4", params=inc, headers=viewer)
    assert r.status_code == 200 and r.content[4:8] == b"ftyp"
    span = {"start": ours[0]["start"], "end": ours[-1]["end"]}
    r = await g.client.get(f"/api/cameras/{CAM}/recordings/export.mp4", params={**span, **inc}, headers=viewer)
    assert r.status_code == 403
    r = await g.client.get(f"/api/cameras/{CAM}/recordings/index.m3u8", params={**span, **inc}, headers=viewer)
    assert r.status_code == 200 and "#EXT-X-ENDLIST" in r.text, r.text

    # Playback as HLS VOD: ffprobe (a native player) reads it with the viewer's credentials.
    token = viewer["Authorization"]
    probe = await asyncio.to_thread(
        ffprobe,
        f"{g.base_url}/api/cameras/{CAM}/recordings/index.m3u8?" + urlencode({**span, **inc}),
        "-headers", f"Authorization: {token}\r\n", "-count_packets",
    )  # fmt: skip
    assert probe["streams"][0]["codec_name"] == "h264" and int(probe["streams"][0]["nb_read_packets"]) > 25

    # Export across the manual and the incident recordings: one MP4, no re-encoding, a signed manifest.
    lo = time.mktime(time.strptime(manual[0]["start"][:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone + 1.0
    rng = {"start": iso(lo), "end": ours[0]["end"]}
    clip_r = await g.client.get(f"/api/cameras/{CAM}/recordings/export.mp4", params=rng, headers=admin)
    assert clip_r.status_code == 200, clip_r.text
    man_r = await g.client.get(f"/api/cameras/{CAM}/recordings/export.json", params=rng, headers=admin)
    assert man_r.status_code == 200, man_r.text
    doc = man_r.json()
    clip = tmp_path / "clip.mp4"
    clip.write_bytes(clip_r.content)
    manifest = tmp_path / "clip.json"
    manifest.write_text(json.dumps(doc))
    assert doc["camera_id"] == CAM and doc["exported_by"] == "admin" and len(doc["segments"]) >= 2
    assert doc["clip"]["sha256"] == clip_r.headers["x-clip-sha256"]
    info = await asyncio.to_thread(ffprobe, str(clip))
    assert info["streams"][0]["codec_name"] == "h264" and info["streams"][0]["width"] == 640
    runner = CliRunner()
    env = {"LIANDONG_DATA_DIR": str(data)}
    ok = await asyncio.to_thread(runner.invoke, cli, ["evidence", "verify", str(clip), str(manifest)], env=env)
    assert ok.exit_code == 0, ok.output
    raw = bytearray(clip.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    clip.write_bytes(bytes(raw))
    bad = await asyncio.to_thread(runner.invoke, cli, ["evidence", "verify", str(clip), str(manifest)], env=env)
    assert bad.exit_code == 1 and "clip: sha256" in bad.output, bad.output

    # The chain: whole, then a flipped byte in a stored segment is named.
    ok = await asyncio.to_thread(runner.invoke, cli, ["evidence", "verify", "--camera", CAM], env=env)
    assert ok.exit_code == 0, ok.output
    seg = next((data / "recordings").glob("*/*/*.mp4"))
    raw = bytearray(seg.read_bytes())
    raw[-5] ^= 0x01
    seg.write_bytes(bytes(raw))
    bad = await asyncio.to_thread(runner.invoke, cli, ["evidence", "verify", "--camera", CAM], env=env)
    assert bad.exit_code == 1 and seg.name in bad.output, bad.output

    async with g.ld.db.session() as s:
        kinds = [(a.kind, a.username) for a in (await s.scalars(select(AuditEntry))).all()]
    assert ("recording.playback", "viewer") in kinds and ("recording.export", "admin") in kinds
    assert ("recording.manual", "admin") in kinds
