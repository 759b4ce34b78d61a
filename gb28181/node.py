"""This node's GB/T 28181 side, built by the composition root: the SIP endpoint, the registry
directory and the RTP ports, and the upstream factory the stream core uses for ``gb28181://`` cameras."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from camera_registry.store import CameraStore
from gb28181.directory import CameraDirectory
from gb28181.media import MediaPorts
from gb28181.server import Gb28181Server
from gb28181.settings import Gb28181Settings
from gb28181.upstream import Gb28181Upstream
from streams.ports import Upstream, UpstreamCallbacks, UpstreamTimeouts

__all__ = ["Gb28181Node"]


class Gb28181Node:
    """The GB/T 28181 parts of one gateway node."""

    def __init__(self, settings: Gb28181Settings, store: CameraStore, changed: Any) -> None:
        self.settings = settings
        self.directory = CameraDirectory(store, changed)
        self.server = Gb28181Server(settings, self.directory)
        self.ports = MediaPorts(*settings.media_ports)

    def upstream(
        self,
        camera_id: str,
        url: str,
        loop: asyncio.AbstractEventLoop,
        *,
        callbacks: UpstreamCallbacks,
        timeouts: UpstreamTimeouts,
        transport: str = "udp",
    ) -> Upstream:
        """A channel's upstream (an :class:`~streams.ports.UpstreamFactory` for ``gb28181://`` URLs)."""
        return Gb28181Upstream(
            camera_id, url, loop, callbacks=callbacks, timeouts=timeouts, server=self.server, ports=self.ports,
            transport=transport,
        )  # fmt: skip

    def devices(self) -> list[dict[str, Any]]:
        """Registered devices and devices waiting for an admin, for the admin API."""
        now = time.monotonic()
        out: list[dict[str, Any]] = [
            {
                "device_id": d.device_id,
                "state": "online" if d.online else "offline",
                "address": f"{d.addr[0]}:{d.addr[1]}",
                "transport": d.transport,
                "name": d.name,
                "manufacturer": d.manufacturer,
                "model": d.model,
                "channels": len(d.catalog),
                "last_seen_s": round(now - d.last_seen, 1),
            }
            for d in self.server.devices.values()
        ]
        out += [
            {
                "device_id": w.device_id,
                "state": "waiting",
                "address": f"{w.addr[0]}:{w.addr[1]}",
                "transport": w.transport,
                "attempts": w.attempts,
                "last_seen_s": round(now - w.last_seen, 1),
            }
            for w in self.server.waiting.values()
        ]
        return out

    def accept(self, device_id: str, area: str, department: str) -> bool:
        """Accept a device (waiting or not yet seen); True when it was waiting."""
        self.directory.accept(device_id, area, department)
        return self.server.waiting.pop(device_id, None) is not None

    async def start(self) -> None:
        """Listen for devices."""
        await self.server.start()

    async def stop(self) -> None:
        """Stop listening."""
        await self.server.stop()
