"""Cameras found and imported by ONVIF: the device's profiles, stream and snapshot URIs and PTZ,
written through the same inventory import as CSV files (same validation, same report), with the
credentials sealed in the secret box and the PTZ control stored with them."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from camera_registry.inventory import InventoryReport, import_inventory
from camera_registry.ptz_endpoints import PtzEndpoints
from camera_registry.store import CameraStore
from ptz.onvif import DiscoveredDevice, OnvifDevice
from ptz.onvif.device import main_and_sub

__all__ = ["OnvifImport", "import_onvif", "registry_hosts"]


@dataclass
class OnvifImport:
    """What an ONVIF import found and did."""

    report: InventoryReport
    camera_id: str
    model: str = ""
    profiles: list[dict[str, Any]] = field(default_factory=list)
    main_uri: str = ""
    sub_uri: str = ""
    snapshot_uri: str | None = None
    ptz: bool = False

    def summary(self) -> dict[str, Any]:
        """The inventory report's summary with the device's findings."""
        return {
            **self.report.summary(),
            "camera_id": self.camera_id,
            "model": self.model,
            "profiles": self.profiles,
            "sub_stream": self.sub_uri,
            "snapshot_uri": self.snapshot_uri,
            "ptz": self.ptz,
        }


def _with_credentials(uri: str, username: str, password: str) -> str:
    """The RTSP URI with the credentials in it, which the inventory import splits off and seals."""
    p = urlsplit(uri)
    if not username or p.username:
        return uri
    host = p.hostname or ""
    netloc = f"{quote(username, safe='')}:{quote(password, safe='')}@{host}" + (f":{p.port}" if p.port else "")
    return urlunsplit((p.scheme, netloc, p.path, p.query, p.fragment))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-").lower()[:64] or "onvif"


async def import_onvif(
    store: CameraStore,
    endpoints: PtzEndpoints,
    url: str,
    username: str,
    password: str,
    *,
    camera_id: str | None = None,
    area: str = "",
    name: str | None = None,
    timeout_s: float = 5.0,
) -> OnvifImport:
    """Read the device at ``url`` (its device service) and upsert it as a camera; raises
    :class:`ptz.ports.PtzError` when the device cannot be read, and the store's refusal when the
    address is outside ``cameras.allowed_networks``."""
    store.networks.check(url, "url")
    dev = await OnvifDevice(url, username, password, timeout_s=timeout_s).connect()
    try:
        info = await dev.info()
        profiles = await dev.profiles()
        main, sub = main_and_sub(profiles)
        main_uri = await dev.stream_uri(main.token)
        sub_uri = await dev.stream_uri(sub.token) if sub.token != main.token else main_uri
        snapshot = await dev.snapshot_uri(sub.token)
        has_ptz = main.ptz and dev.ptz_url is not None
    finally:
        await dev.close()
    cid = camera_id or _slug(f"{info.model}-{info.serial}")
    record = {
        "id": cid,
        "name": name or f"{info.manufacturer} {info.model}".strip() or cid,
        "kind": "fixed",
        "source_url": _with_credentials(main_uri, username, password),
        "area": area,
        "tags": ["onvif", *(["ptz"] if has_ptz else [])],
    }
    report = await import_inventory(store, [record])
    if has_ptz and report.written and not report.rejected_count():
        async with store.db.session() as s:
            await endpoints.put(
                s, cid, driver="onvif", url=url, profile=main.token, username=username, password=password
            )
    return OnvifImport(
        report,
        cid,
        model=info.model,
        profiles=[
            {"token": p.token, "encoding": p.encoding, "width": p.width, "height": p.height, "ptz": p.ptz}
            for p in profiles
        ],
        main_uri=main_uri,
        sub_uri=sub_uri,
        snapshot_uri=snapshot,
        ptz=has_ptz,
    )


async def registry_hosts(store: CameraStore) -> dict[str, str]:
    """Host -> camera id of every camera in the registry (its stream's host), to tell which
    discovered devices it already has."""
    out: dict[str, str] = {}
    cams, _ = await store.search(limit=10**9)
    for cam in cams:
        host = urlsplit(cam.source_url).hostname
        if host:
            out.setdefault(host, cam.id)
    return out


def known(device: DiscoveredDevice, hosts: dict[str, str]) -> str | None:
    """The registry's camera at the discovered device's address, if any."""
    for x in device.xaddrs:
        h = urlsplit(x).hostname
        if h and h in hosts:
            return hosts[h]
    return None
