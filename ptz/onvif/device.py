"""One ONVIF device: its clock, identity, service addresses, media profiles and stream URIs."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit
from xml.sax.saxutils import escape

import httpx

from ptz.onvif.soap import NS, SoapClient
from ptz.ports import PtzError

__all__ = ["DeviceInfo", "OnvifDevice", "Profile"]


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """What the device says it is."""

    manufacturer: str
    model: str
    firmware: str
    serial: str


@dataclass(frozen=True, slots=True)
class Profile:
    """A media profile: one encoder's stream, and whether PTZ is bound to it."""

    token: str
    name: str
    encoding: str
    width: int
    height: int
    ptz: bool

    @property
    def pixels(self) -> int:
        """Width times height (to tell the main stream from the sub stream)."""
        return self.width * self.height


class OnvifDevice:
    """An ONVIF device at ``url`` (its device service), signed in as ``username``.

    :meth:`connect` reads the device's clock (so tokens are signed on it) and its service
    addresses; the other calls need it first."""

    def __init__(
        self, url: str, username: str, password: str, *, timeout_s: float = 5.0, http: httpx.AsyncClient | None = None
    ) -> None:
        self.url = url
        self._own_http = http is None
        self.http = http or httpx.AsyncClient(trust_env=False)
        self.soap = SoapClient(self.http, username, password, timeout_s=timeout_s)
        self.media_url: str | None = None
        self.ptz_url: str | None = None

    async def connect(self) -> OnvifDevice:
        """Clock offset and service addresses (``GetSystemDateAndTime``, ``GetCapabilities``)."""
        await self.soap.sync_clock(self.url)
        caps = await self.soap.call(
            self.url, "GetCapabilities", "<tds:GetCapabilities><tds:Category>All</tds:Category></tds:GetCapabilities>"
        )
        self.media_url = self._here(_text(caps, "tds:Capabilities/tt:Media/tt:XAddr"))
        self.ptz_url = self._here(_text(caps, "tds:Capabilities/tt:PTZ/tt:XAddr"))
        if self.media_url is None:
            raise PtzError("GetCapabilities: the device has no media service")
        return self

    def _here(self, xaddr: str) -> str | None:
        """A service address on the host we reached the device at: devices behind NAT or with
        several interfaces report addresses we cannot (or, past the egress check, must not) use."""
        if not xaddr:
            return None
        ours, theirs = urlsplit(self.url), urlsplit(xaddr)
        return urlunsplit((ours.scheme, ours.netloc, theirs.path, theirs.query, ""))

    async def close(self) -> None:
        """Close the HTTP client if this device made it."""
        if self._own_http:
            await self.http.aclose()

    async def info(self) -> DeviceInfo:
        """Manufacturer, model, firmware, serial number."""
        r = await self.soap.call(self.url, "GetDeviceInformation", "<tds:GetDeviceInformation/>")
        return DeviceInfo(
            _text(r, "tds:Manufacturer"),
            _text(r, "tds:Model"),
            _text(r, "tds:FirmwareVersion"),
            _text(r, "tds:SerialNumber"),
        )

    def _media(self) -> str:
        if self.media_url is None:
            raise PtzError("connect() first")
        return self.media_url

    async def profiles(self) -> list[Profile]:
        """The media profiles, as the device lists them."""
        r = await self.soap.call(self._media(), "GetProfiles", "<trt:GetProfiles/>")
        out = []
        for p in r.findall("trt:Profiles", NS):
            enc = p.find("tt:VideoEncoderConfiguration", NS)
            out.append(
                Profile(
                    token=p.get("token", ""),
                    name=_text(p, "tt:Name"),
                    encoding=_text(enc, "tt:Encoding") if enc is not None else "",
                    width=_int(enc, "tt:Resolution/tt:Width"),
                    height=_int(enc, "tt:Resolution/tt:Height"),
                    ptz=p.find("tt:PTZConfiguration", NS) is not None,
                )
            )
        return out

    async def stream_uri(self, profile: str) -> str:
        """The RTSP URI of a profile (RTP over RTSP, unicast)."""
        body = (
            "<trt:GetStreamUri><trt:StreamSetup><tt:Stream>RTP-Unicast</tt:Stream><tt:Transport>"
            f"<tt:Protocol>RTSP</tt:Protocol></tt:Transport></trt:StreamSetup><trt:ProfileToken>{escape(profile)}"
            "</trt:ProfileToken></trt:GetStreamUri>"
        )
        r = await self.soap.call(self._media(), "GetStreamUri", body)
        return _text(r, "trt:MediaUri/tt:Uri")

    async def snapshot_uri(self, profile: str) -> str | None:
        """The JPEG snapshot URI of a profile, if the device has one."""
        body = f"<trt:GetSnapshotUri><trt:ProfileToken>{escape(profile)}</trt:ProfileToken></trt:GetSnapshotUri>"
        try:
            r = await self.soap.call(self._media(), "GetSnapshotUri", body)
        except PtzError:
            return None
        return _text(r, "trt:MediaUri/tt:Uri") or None


def main_and_sub(profiles: list[Profile]) -> tuple[Profile, Profile]:
    """The main (largest) and sub (smallest) H.264/H.265 profiles; the same one twice if only one."""
    video = [p for p in profiles if p.encoding.upper() in ("H264", "H265")] or profiles
    if not video:
        raise PtzError("GetProfiles: the device has no media profile")
    ordered = sorted(video, key=lambda p: p.pixels)
    return ordered[-1], ordered[0]


def _text(el: ET.Element | None, path: str) -> str:
    if el is None:
        return ""
    return (el.findtext(path, "", NS) or "").strip()


def _int(el: ET.Element | None, path: str) -> int:
    try:
        return int(_text(el, path) or 0)
    except ValueError:
        return 0
