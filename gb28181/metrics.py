"""Prometheus figures of the SIP endpoint, read at scrape time (nothing to keep in step)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from gb28181.cascade import Cascade
from gb28181.server import Gb28181Server

__all__ = ["CascadeCollector", "SipCollector"]


class SipCollector(Collector):
    """``liandong_gb28181_devices{state}`` and ``liandong_gb28181_sip_refused_total{reason}``."""

    def __init__(self, server: Gb28181Server) -> None:
        self.server = server

    def collect(self) -> Iterator[Metric]:
        """The figures now."""
        devices = GaugeMetricFamily("liandong_gb28181_devices", "GB/T 28181 devices by state", labels=["state"])
        online = sum(d.online for d in self.server.devices.values())
        devices.add_metric(["online"], online)
        devices.add_metric(["offline"], len(self.server.devices) - online)
        devices.add_metric(["waiting"], len(self.server.waiting))
        yield devices
        refused = CounterMetricFamily(
            "liandong_gb28181_sip_refused", "SIP messages refused or dropped, by reason", labels=["reason"]
        )
        for reason, n in asdict(self.server.counters).items():
            refused.add_metric([reason], n)
        yield refused


class CascadeCollector(Collector):
    """``liandong_gb28181_superiors{state}``, ``liandong_gb28181_cascade_invites{superior}`` and
    ``liandong_gb28181_cascade_shared{superior}`` (cameras in its catalog as last sent)."""

    def __init__(self, cascade: Cascade) -> None:
        self.cascade = cascade

    def collect(self) -> Iterator[Metric]:
        """The figures now."""
        links = list(self.cascade.links.values())
        state = GaugeMetricFamily("liandong_gb28181_superiors", "Superior platforms by state", labels=["state"])
        registered = sum(link.registered for link in links)
        state.add_metric(["registered"], registered)
        state.add_metric(["unregistered"], len(links) - registered)
        yield state
        invites = GaugeMetricFamily(
            "liandong_gb28181_cascade_invites", "Live INVITEs of each superior platform", labels=["superior"]
        )
        shared = GaugeMetricFamily(
            "liandong_gb28181_cascade_shared", "Cameras in each superior's catalog", labels=["superior"]
        )
        for link in links:
            invites.add_metric([link.sup.id], len(link.plays))
            shared.add_metric([link.sup.id], len(link.shared))
        yield invites
        yield shared
