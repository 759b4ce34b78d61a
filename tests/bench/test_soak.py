"""A one-minute soak (``bench.soak``) end to end: every check of the long run passes on a short one.

It takes ~90 s, so it is left out of the default run: ``LIANDONG_SOAK_TEST=1`` (or ``make
soak-test``) runs it; ``make soak`` runs the full 30 minutes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [
    pytest.mark.media,
    pytest.mark.skipif(not os.environ.get("LIANDONG_SOAK_TEST"), reason="long: set LIANDONG_SOAK_TEST=1"),
    pytest.mark.timeout(300),
]


def test_one_minute_soak_passes(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "soak.json"
    cmd = [sys.executable, "-m", "bench.soak", "--minutes", "1", "--warmup", "20", "--webrtc-viewers", "4"]
    cmd += ["--flap-every", "20", "--policy-every", "5", "--alarm-every", "10", "--out", str(out)]
    done = subprocess.run(cmd, cwd=repo_root, capture_output=True, text=True, timeout=280)
    report = json.loads(out.read_text())
    assert done.returncode == 0, {k: report[k] for k in ("checks", "gateway_log_errors")}
    assert report["pass"] and all(report["checks"].values())
    assert report["flaps"] == 2 and report["alarms"]["accepted"] == 6 and not report["alarms"]["missing"]
    assert report["policy"]["changes"] >= 20 and report["positions"]["per_s"] >= 90
    assert report["webrtc"]["ok"] == 4 and report["webrtc"]["left_stalled"] == []
    assert report["hls"]["supported"] or report["hls"]["viewers"] == 0
    assert report["gateway_log_errors"] == []
