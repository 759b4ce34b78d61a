"""Cluster metrics at ``/metrics``: leases held and paused, Redis reachability, and counts of
leases taken, lost, paused and resumed, and of viewers redirected to the owner."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

if TYPE_CHECKING:
    from gateway.cluster.ownership import CameraOwnership

__all__ = ["ClusterCollector"]


class ClusterCollector(Collector):
    """Reads the node's state at scrape time (nothing to keep in step)."""

    def __init__(self, ownership: CameraOwnership, registry: CollectorRegistry) -> None:
        self.ownership = ownership
        self.redirects: dict[str, int] = {}
        registry.register(self)

    def redirected(self, route: str) -> None:
        """Count a viewer sent to the owner (by route template)."""
        self.redirects[route] = self.redirects.get(route, 0) + 1

    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
        o = self.ownership
        yield GaugeMetricFamily("liandong_cluster_leases", "Camera leases this node holds", value=o.held())
        yield GaugeMetricFamily(
            "liandong_cluster_paused_cameras", "Pulls paused because Redis could not be reached", value=o.paused()
        )
        yield GaugeMetricFamily(
            "liandong_cluster_redis_up", "1 when the last lease renewal reached Redis", value=int(o.redis_ok)
        )
        events = CounterMetricFamily(
            "liandong_cluster_lease_events", "Leases taken, lost, paused, resumed", labels=["event"]
        )
        for name, n in sorted(o.counts.items()):
            events.add_metric([name], n)
        yield events
        red = CounterMetricFamily("liandong_cluster_redirects", "Requests sent to the owning node", labels=["route"])
        for route, n in sorted(self.redirects.items()):
            red.add_metric([route], n)
        yield red
