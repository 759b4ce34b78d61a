"""The PTZ drivers the gateway can build, by a camera's ``camera_ptz.driver``."""

from __future__ import annotations

import asyncio

from camera_registry.egress import CameraAddressRefused, CameraNetworks
from camera_registry.ptz_endpoints import PtzEndpoint
from gateway.ptz.service import DriverFactory
from ptz.onvif import OnvifDevice, OnvifPtz
from ptz.ports import PtzDriver, PtzError

__all__ = ["driver_factory"]


def driver_factory(networks: CameraNetworks, timeout_s: float) -> DriverFactory:
    """Connects a camera's driver; every connection passes ``cameras.allowed_networks`` after DNS."""

    async def connect(ep: PtzEndpoint) -> PtzDriver:
        if ep.driver != "onvif":
            raise PtzError(f"no driver '{ep.driver}'")
        try:
            url = await asyncio.to_thread(networks.connect_url, ep.url, "url")
        except (CameraAddressRefused, OSError) as e:
            raise PtzError(
                str(e) if isinstance(e, CameraAddressRefused) else "camera address does not resolve"
            ) from None
        dev = OnvifDevice(url, ep.username, ep.password, timeout_s=timeout_s)
        try:
            await dev.connect()
            return OnvifPtz(dev, ep.profile)
        except BaseException:
            await dev.close()
            raise

    return connect
