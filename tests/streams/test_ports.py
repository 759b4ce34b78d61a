"""The stream core's boundary: it imports nothing above it, and the gateway's parts fill its ports."""

from __future__ import annotations

import ast
import asyncio
import inspect
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import generate_latest

from gateway.cluster.ownership import CameraOwnership
from gateway.metrics import Metrics
from streams import (
    NO_METRICS,
    HubMetrics,
    LocalOwnership,
    NoMetrics,
    Ownership,
    RtspUpstream,
    TranscodeMetrics,
    Upstream,
    UpstreamState,
)
from streams.transcode.upstream import TranscodeUpstream

STREAMS = Path(__file__).resolve().parents[2] / "streams"
# Packages the stream core must not import: it sits below all of them (docs/architecture.md).
ABOVE = {"gateway", "acl", "web", "snapshot", "camera_registry", "storage", "bench", "fixtures", "tests"}


def _imported_packages(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module.split(".")[0])
    return out


def test_streams_imports_nothing_above_it() -> None:
    modules = sorted(STREAMS.rglob("*.py"))
    assert len(modules) >= 10
    found = {str(p.relative_to(STREAMS.parent)): _imported_packages(p) & ABOVE for p in modules}
    assert {p: pkgs for p, pkgs in found.items() if pkgs} == {}


def _members(protocol: type) -> dict[str, Any]:
    return {n: v for n, v in vars(protocol).items() if not n.startswith("_")}


@pytest.mark.parametrize(
    ("protocol", "implementation"),
    [
        (HubMetrics, Metrics),
        (HubMetrics, NoMetrics),
        (TranscodeMetrics, Metrics),
        (TranscodeMetrics, NoMetrics),
        (Ownership, LocalOwnership),
        (Ownership, CameraOwnership),
        (Upstream, RtspUpstream),
        (Upstream, TranscodeUpstream),
    ],
)
def test_implementations_have_the_protocols_members(protocol: type, implementation: type) -> None:
    """mypy checks the wiring's call sites; this catches a member renamed on one side only (the
    cluster sets the hub's ownership where mypy does not look yet)."""
    for name, member in _members(protocol).items():
        if isinstance(member, property):  # an attribute or property; the instances set attributes in __init__
            assert name in vars(implementation) or f"self.{name} =" in inspect.getsource(implementation), name
            continue
        impl = getattr(implementation, name, None)
        assert callable(impl), f"{implementation.__name__}.{name}"
        assert inspect.iscoroutinefunction(impl) == inspect.iscoroutinefunction(member), name
        want = list(inspect.signature(member).parameters)
        got = list(inspect.signature(impl).parameters)
        assert got[: len(want)] == want, f"{implementation.__name__}.{name}{got} != {want}"


def test_only_a_cluster_may_refuse_a_camera() -> None:
    assert LocalOwnership.may_refuse is False and CameraOwnership.may_refuse is True
    asyncio.run(LocalOwnership().claim("cam-1"))  # always allowed


def test_metrics_reports_what_the_hub_reported_before() -> None:
    """The same series, label for label, as when the hub wrote to prometheus itself."""
    m = Metrics()
    m.viewers_changed("cam-1", "webrtc", 1)
    m.viewers_changed("cam-1", "webrtc", 1)
    m.viewers_changed("cam-1", "webrtc", -1)
    m.upstream_state_changed("cam-1", UpstreamState.live)
    m.upstream_retrying("cam-1")
    m.upstream_received("cam-1", 1000, 8000.0)
    m.first_unit_delivered("hls", 0.3)
    m.gop_dropped("cam-1", "webrtc")
    m.transcodes_running("low", 2)
    m.transcode_restarted("cam-1")
    text = generate_latest(m.registry).decode()
    assert 'liandong_viewers{camera="cam-1",protocol="webrtc"} 1.0' in text
    assert 'liandong_upstream_state{camera="cam-1",state="live"} 1.0' in text
    assert 'liandong_upstream_state{camera="cam-1",state="failed"} 0.0' in text
    assert 'liandong_upstream_reconnects_total{camera="cam-1"} 1.0' in text
    assert 'liandong_upstream_bytes_total{camera="cam-1"} 1000.0' in text
    assert 'liandong_upstream_bitrate_bps{camera="cam-1"} 8000.0' in text
    assert 'liandong_time_to_first_frame_seconds_count{protocol="hls"} 1.0' in text
    assert 'liandong_reader_dropped_gops_total{camera="cam-1",reader="webrtc"} 1.0' in text
    assert 'liandong_transcodes{variant="low"} 2.0' in text
    assert 'liandong_transcode_restarts_total{camera="cam-1"} 1.0' in text


def test_no_metrics_takes_every_report() -> None:
    for name in (*_members(HubMetrics), *_members(TranscodeMetrics)):
        assert callable(getattr(NO_METRICS, name))


def test_the_gateways_parts_fill_the_ports_for_mypy_too() -> None:
    """Structural conformance as mypy sees it (``mypy tests/streams/test_ports.py``); a no-op at run time."""

    def fill(own: CameraOwnership, metrics: Metrics) -> tuple[Ownership, HubMetrics, TranscodeMetrics]:
        return own, metrics, metrics

    assert fill.__name__ == "fill"
