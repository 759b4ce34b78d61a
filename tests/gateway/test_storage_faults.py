"""A full disk and a read-only data dir: clear errors (507/503 naming the cause, never a 500
traceback), nothing half written, and the gateway carries on once there is room again.

The data dir lives on a small tmpfs mounted for the test (needs root, as on the project's
machines; skipped with the reason elsewhere), so the failures are the kernel's own ENOSPC and
EROFS, not imitations.
"""

from __future__ import annotations

import errno
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from acl.models import Role
from fixtures.gateway_process import ROOT, GatewayProcess, add_user, integrity_check, verify_audit
from gateway.alarms.hmac_auth import sign

PASSWORD = "disk-password-1"


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 16 MiB tmpfs, unmounted afterwards whatever happens."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m,mode=0700", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.decode(errors='replace').strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _fill(disk: Path) -> Path:
    """Take every free byte of the file system; returns the filler to delete later."""
    filler = disk / "filler"
    with open(filler, "wb", buffering=0) as f:
        for chunk in (1 << 20, 1 << 16, 1 << 12, 1):
            try:
                while True:
                    f.write(b"\xff" * chunk)
            except OSError as e:
                assert e.errno == errno.ENOSPC, e
    return filler


def _cameras(n: int, prefix: str) -> bytes:
    rows = [
        {"id": f"{prefix}-{i:05d}", "name": f"Cam {i}", "source_url": f"rtsp://10.1.0.{i % 250}/s"} for i in range(n)
    ]
    return json.dumps(rows).encode()


def _alarm(secret: str, alarm_id: str) -> dict[str, object]:
    raw = json.dumps({"alarm_id": alarm_id, "lat": 31.15, "lon": 121.35}).encode()
    ts = str(int(time.time()))
    return {
        "content": raw,
        "headers": {
            "X-Liandong-Source": "box",
            "X-Liandong-Timestamp": ts,
            "X-Liandong-Signature": sign(secret, ts, raw),
            "Content-Type": "application/json",
        },
    }


def test_disk_full_gives_507_and_recovers(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "data"
    add_user(data, "admin", PASSWORD, Role.admin)
    gw = GatewayProcess(data, log_path=tmp_path / "gateway.log")
    try:
        gw.start()
        c = httpx.Client(base_url=gw.base_url, headers=gw.token("admin", PASSWORD), timeout=30)
        secret = c.post("/api/admin/alarm-sources", json={"name": "box"}).json()["secret"]
        r = c.post("/api/cameras/import", content=_cameras(200, "base"), headers={"Content-Type": "application/json"})
        assert r.status_code == 200, r.text
        filler = _fill(small_disk)

        writes = {
            "import": lambda: c.post(
                "/api/cameras/import", content=_cameras(3000, "full"), headers={"Content-Type": "application/json"}
            ),
            "camera": lambda: c.post("/api/cameras", json={"id": "one", "name": "one", "source_url": "rtsp://h/s"}),
            "policy": lambda: c.put(
                "/api/admin/groups/g", json={"name": "g", "cameras": [f"c{i}" for i in range(9000)]}
            ),
            "alarm": lambda: c.post("/api/alarms", **_alarm(secret, "FULL-1")),  # type: ignore[arg-type]
        }
        got = {name: w() for name, w in writes.items()}
        for name, r in got.items():
            assert r.status_code == 507 or r.is_success, f"{name}: {r.status_code} {r.text[:300]}"
            if r.status_code == 507:
                assert "no space left" in r.json()["detail"], r.text
        assert got["import"].status_code == 507 and got["policy"].status_code == 507
        # Reads go on while the disk is full.
        assert c.get("/api/cameras?limit=1").json()["total"] == 200 + (got["camera"].status_code == 201)
        assert c.get("/readyz").status_code == 200
        assert "Traceback" not in gw.log_tail(100_000)

        filler.unlink()  # room again: the same requests work, without a restart
        assert (
            c.post(
                "/api/cameras/import", content=_cameras(3000, "full"), headers={"Content-Type": "application/json"}
            ).json()["created"]
            == 3000
        )
        assert c.post("/api/alarms", **_alarm(secret, "FULL-2")).status_code == 202  # type: ignore[arg-type]
        c.close()
    finally:
        gw.stop()
    assert integrity_check(gw.db_path) == "ok"
    res = verify_audit(data)
    assert res.ok, res


def test_read_only_data_dir_refuses_to_start_with_a_clear_error(small_disk: Path, tmp_path: Path) -> None:
    data = small_disk / "data"
    add_user(data, "admin", PASSWORD, Role.admin)
    gw = GatewayProcess(data, log_path=tmp_path / "gateway.log")
    gw.start()
    gw.stop()
    r = subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], capture_output=True)
    assert r.returncode == 0, r.stderr
    env = {"LIANDONG_DATA_DIR": str(data), "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-m", "gateway.cli", "serve", "--port", "1"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode != 0
    assert "read-only" in out.stderr and str(data) in out.stderr, out.stderr[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
