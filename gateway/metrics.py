"""Prometheus metrics: one registry per app instance (tests build many apps in one process).

Every label value comes from a bounded set, never from a client: each new value is a new series
kept for the life of the process, so one client sending random methods or paths could grow the
registry (and every scrape) without bound. HTTP methods outside the standard ones are ``other``,
routes are the matched route's template (``unmatched`` when none matched), statuses are the code
when it is a valid one, else ``other``. Camera labels name registered cameras only (the ACL and
the handlers refuse unknown ids before the hub sees them); a deleted camera's series are dropped
(:meth:`Metrics.forget_camera`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from streams.ports import UpstreamState

__all__ = ["HTTP_METHODS", "Metrics"]

HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class Metrics:
    """Every metric the gateway exports at ``/metrics``; also the stream core's
    :class:`~streams.HubMetrics` and :class:`~streams.TranscodeMetrics`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.http_requests = Counter(
            "liandong_http_requests_total", "HTTP requests", ["method", "route", "status"], registry=r
        )
        self.http_latency = Histogram(
            "liandong_http_request_seconds",
            "HTTP request latency",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )
        self.logins = Counter("liandong_logins_total", "Login attempts", ["outcome"], registry=r)
        self.denials = Counter("liandong_authz_denied_total", "Authorization denials", ["policy"], registry=r)
        # Stream hub
        self.upstream_state = Gauge(
            "liandong_upstream_state",
            "1 for the camera's current upstream state",
            ["camera", "state"],
            registry=r,
        )
        self.upstream_reconnects = Counter(
            "liandong_upstream_reconnects_total", "Upstream reconnect attempts", ["camera"], registry=r
        )
        self.upstream_bytes = Counter(
            "liandong_upstream_bytes_total", "Bytes received from the camera", ["camera"], registry=r
        )
        self.upstream_bitrate = Gauge(
            "liandong_upstream_bitrate_bps", "Upstream bitrate over the last seconds", ["camera"], registry=r
        )
        self.viewers = Gauge("liandong_viewers", "Current viewers", ["camera", "protocol"], registry=r)
        self.dropped_gops = Counter(
            "liandong_reader_dropped_gops_total",
            "GOPs dropped for slow readers",
            ["camera", "reader"],
            registry=r,
        )
        self.transcodes = Gauge("liandong_transcodes", "Running shared transcodes", ["variant"], registry=r)
        self.transcode_restarts = Counter(
            "liandong_transcode_restarts_total", "Transcoder processes restarted", ["camera"], registry=r
        )
        self.hls_muxers = Gauge("liandong_hls_muxers", "Cameras being muxed to HLS", registry=r)
        self.recording_paused = Gauge(
            "liandong_recording_paused", "Cameras whose recording is paused (disk full)", ["camera"], registry=r
        )
        self.sessions = Gauge("liandong_sessions", "Open viewer sessions", ["protocol"], registry=r)
        self.ttff = Histogram(
            "liandong_time_to_first_frame_seconds",
            "Reader attach to first packet delivered",
            ["protocol"],
            buckets=(0.01, 0.025, 0.05, 0.1, 0.2, 0.4, 0.8, 1.2, 2, 4, 8),
            registry=r,
        )

    def http_request(self, method: str, route: Any, status: int, seconds: float) -> None:
        """Count one HTTP request: ``route`` is the route the router matched (None when none did)."""
        m = method if method in HTTP_METHODS else "other"
        template = getattr(route, "path", None)
        label = template if isinstance(template, str) else "unmatched"
        code = str(status) if 100 <= status <= 599 else "other"
        self.http_requests.labels(m, label, code).inc()
        self.http_latency.labels(label).observe(seconds)

    # -- the stream core's reports (streams.ports.HubMetrics, TranscodeMetrics) ----------------
    def viewers_changed(self, camera_id: str, protocol: str, delta: int) -> None:
        """Viewers of a camera by protocol came (+) or went (-)."""
        self.viewers.labels(camera_id, protocol).inc(delta)

    def upstream_state_changed(self, camera_id: str, state: UpstreamState) -> None:
        """1 for the camera's current upstream state, 0 for the others."""
        for st in UpstreamState:
            self.upstream_state.labels(camera_id, st.value).set(1 if st is state else 0)

    def upstream_retrying(self, camera_id: str) -> None:
        """One more reconnect attempt of the camera's upstream."""
        self.upstream_reconnects.labels(camera_id).inc()

    def upstream_received(self, camera_id: str, nbytes: int, bitrate_bps: float) -> None:
        """Bytes from the camera, and its bitrate now."""
        self.upstream_bytes.labels(camera_id).inc(nbytes)
        self.upstream_bitrate.labels(camera_id).set(bitrate_bps)

    def first_unit_delivered(self, protocol: str, wait_s: float) -> None:
        """Time to first frame of a reader."""
        self.ttff.labels(protocol).observe(wait_s)

    def gop_dropped(self, camera_id: str, protocol: str) -> None:
        """A slow reader lost a GOP."""
        self.dropped_gops.labels(camera_id, protocol).inc()

    def transcodes_running(self, variant: str, count: int) -> None:
        """Running shared transcodes of a variant."""
        self.transcodes.labels(variant).set(count)

    def transcode_restarted(self, camera_id: str) -> None:
        """A camera's transcoder process was restarted."""
        self.transcode_restarts.labels(camera_id).inc()

    async def forget_camera(self, camera_id: str) -> None:
        """Drop a deleted camera's series (camera ids are reused rarely; their series would stay forever)."""
        for metric in (
            self.upstream_state,
            self.upstream_reconnects,
            self.upstream_bytes,
            self.upstream_bitrate,
            self.viewers,
            self.dropped_gops,
            self.transcode_restarts,
        ):
            metric.remove_by_labels({"camera": camera_id})
