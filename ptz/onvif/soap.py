"""SOAP 1.2 over HTTP with WS-Security UsernameToken digests, as ONVIF devices expect.

A digest is ``base64(sha1(nonce + created + password))`` with ``created`` on the *camera's* clock:
cameras refuse tokens a few minutes off theirs, and many run without NTP. :meth:`SoapClient.sync_clock`
asks the device's time (an operation ONVIF leaves unauthenticated) and keeps the offset.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import time
import xml.etree.ElementTree as ET
from xml.sax.saxutils import escape

import httpx

from ptz.ports import PtzError

__all__ = ["NS", "SoapClient", "SoapFault"]

log = logging.getLogger(__name__)

NS = {
    "s": "http://www.w3.org/2003/05/soap-envelope",
    "tds": "http://www.onvif.org/ver10/device/wsdl",
    "trt": "http://www.onvif.org/ver10/media/wsdl",
    "tptz": "http://www.onvif.org/ver20/ptz/wsdl",
    "tt": "http://www.onvif.org/ver10/schema",
}
_WSSE = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"
_WSU = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-utility-1.0.xsd"
_DIGEST = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-username-token-profile-1.0#PasswordDigest"
_B64 = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-soap-message-security-1.0#Base64Binary"
_MAX_REPLY = 1 << 20  # a camera's answers are a few kilobytes; more is a broken or hostile device


class SoapFault(PtzError):
    """The device answered with a SOAP fault (``subcode``: e.g. ``ter:NotAuthorized``)."""

    def __init__(self, operation: str, subcode: str, reason: str) -> None:
        super().__init__(f"{operation}: camera refused ({subcode or 'fault'}: {reason})")
        self.operation, self.subcode, self.reason = operation, subcode, reason


def username_token(username: str, password: str, created: dt.datetime, nonce: bytes) -> str:
    """The ``wsse:Security`` header for ``username`` at ``created`` (the camera's time)."""
    stamp = created.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
    digest = base64.b64encode(
        hashlib.sha1(nonce + stamp.encode() + password.encode(), usedforsecurity=False).digest()
    ).decode()
    return (
        f'<wsse:Security xmlns:wsse="{_WSSE}" xmlns:wsu="{_WSU}" s:mustUnderstand="1"><wsse:UsernameToken>'
        f"<wsse:Username>{escape(username)}</wsse:Username>"
        f'<wsse:Password Type="{_DIGEST}">{digest}</wsse:Password>'
        f'<wsse:Nonce EncodingType="{_B64}">{base64.b64encode(nonce).decode()}</wsse:Nonce>'
        f"<wsu:Created>{stamp}</wsu:Created></wsse:UsernameToken></wsse:Security>"
    )


class SoapClient:
    """Calls operations on one device's services, signed for ``username``."""

    def __init__(self, http: httpx.AsyncClient, username: str, password: str, *, timeout_s: float = 5.0) -> None:
        self.http = http
        self.username, self._password = username, password
        self.timeout_s = timeout_s
        self.clock_offset_s = 0.0  # camera clock minus ours

    def camera_now(self) -> dt.datetime:
        """The camera's clock as we estimate it."""
        return dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.clock_offset_s)

    async def call(self, url: str, operation: str, body: str, *, signed: bool = True) -> ET.Element:
        """POST ``body`` (the operation's element, namespaced with the prefixes of :data:`NS`) and
        return the response's first body element; :class:`SoapFault` for a fault, :class:`PtzError`
        when the device cannot be reached or answers something that is not SOAP."""
        header = (
            f"<s:Header>{username_token(self.username, self._password, self.camera_now(), os.urandom(16))}</s:Header>"
            if signed
            else ""
        )
        ns = " ".join(f'xmlns:{k}="{v}"' for k, v in NS.items())
        envelope = (
            f'<?xml version="1.0" encoding="UTF-8"?><s:Envelope {ns}>{header}<s:Body>{body}</s:Body></s:Envelope>'
        )
        try:
            r = await self.http.post(
                url,
                content=envelope.encode(),
                headers={"content-type": f'application/soap+xml; charset=utf-8; action="{operation}"'},
                timeout=self.timeout_s,
            )
        except httpx.HTTPError as e:
            raise PtzError(f"{operation}: camera unreachable ({type(e).__name__})") from None
        if len(r.content) > _MAX_REPLY:
            raise PtzError(f"{operation}: camera reply too large")
        try:
            # The device is an authenticated peer on the camera network; expat refuses entity
            # expansion bombs and ElementTree resolves no external entities; the size is capped above.
            env = ET.fromstring(r.content)  # noqa: S314
        except ET.ParseError:
            raise PtzError(f"{operation}: camera answered HTTP {r.status_code} without SOAP") from None
        fault = env.find("s:Body/s:Fault", NS)
        if fault is not None:
            sub = fault.findtext("s:Code/s:Subcode/s:Value", "", NS).strip()
            reason = fault.findtext("s:Reason/s:Text", "", NS).strip()[:200]
            raise SoapFault(operation, sub, reason)
        out = env.find("s:Body/*", NS)
        if out is None:
            raise PtzError(f"{operation}: empty SOAP body")
        return out

    async def sync_clock(self, device_url: str) -> float:
        """Ask the device's UTC time and keep the offset to ours (seconds); 0 if it has none."""
        t0 = time.time()
        out = await self.call(device_url, "GetSystemDateAndTime", "<tds:GetSystemDateAndTime/>", signed=False)
        utc = out.find("tds:SystemDateAndTime/tt:UTCDateTime", NS)
        if utc is None:
            return self.clock_offset_s
        try:
            cam = dt.datetime(
                int(utc.findtext("tt:Date/tt:Year", "", NS)),
                int(utc.findtext("tt:Date/tt:Month", "", NS)),
                int(utc.findtext("tt:Date/tt:Day", "", NS)),
                int(utc.findtext("tt:Time/tt:Hour", "", NS)),
                int(utc.findtext("tt:Time/tt:Minute", "", NS)),
                int(utc.findtext("tt:Time/tt:Second", "", NS)),
                tzinfo=dt.UTC,
            )
        except ValueError:
            return self.clock_offset_s
        mid = (t0 + time.time()) / 2
        self.clock_offset_s = cam.timestamp() - mid
        if abs(self.clock_offset_s) > 60:
            log.info("onvif: camera clock %+.0f s off ours; tokens signed on its clock", self.clock_offset_s)
        return self.clock_offset_s
