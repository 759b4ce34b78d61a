"""Checks on a WHEP offer before it reaches aiortc, so bad input gets a 400 with a reason.

The offer is also parsed with aiortc's own parser here, before the camera is opened: aiortc raises
whatever its parser trips on (KeyError, AssertionError, StopIteration, ...) for offers that pass
the line checks, and a bad offer must neither cost an RTSP session nor wait for a camera.
"""

from __future__ import annotations

import logging

from aiortc import sdp as aiortc_sdp

__all__ = ["SdpError", "check_offer"]

log = logging.getLogger(__name__)


class SdpError(ValueError):
    """The offer is not one we can answer; the message says why."""


def check_offer(raw: bytes, max_bytes: int) -> str:
    """Validate a WHEP offer; returns it as text."""
    if not raw:
        raise SdpError("SDP offer: empty body")
    if len(raw) > max_bytes:
        raise SdpError(f"SDP offer: larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SdpError("SDP offer: not UTF-8 text") from None
    if "\x00" in text:
        raise SdpError("SDP offer: contains NUL bytes")
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n") if ln.strip()]
    if not lines or lines[0] != "v=0":
        raise SdpError("SDP offer: must start with v=0")
    for ln in lines:
        if len(ln) < 2 or ln[1] != "=" or not ln[0].isalpha():
            raise SdpError("SDP offer: malformed line (expected <type>=<value>)")
    media = [ln for ln in lines if ln.startswith("m=")]
    video = [m for m in media if m.startswith("m=video ")]
    if not video:
        raise SdpError("SDP offer: no video media section (m=video)")
    rtpmaps = [ln.lower() for ln in lines if ln.startswith("a=rtpmap:")]
    if not any(" h264/90000" in r for r in rtpmaps):
        raise SdpError("SDP offer: the browser offers no H.264 codec (a=rtpmap:... H264/90000)")
    if not any(ln.startswith("a=ice-ufrag:") for ln in lines):
        raise SdpError("SDP offer: no ICE credentials (a=ice-ufrag)")
    if not any(ln.startswith("a=fingerprint:") for ln in lines):
        raise SdpError("SDP offer: no DTLS fingerprint (a=fingerprint)")
    if any(ln in ("a=sendonly", "a=inactive") for ln in lines) and not any(
        ln in ("a=recvonly", "a=sendrecv") for ln in lines
    ):
        raise SdpError("SDP offer: the video section must be recvonly (WHEP viewers receive)")
    text = text if text.endswith("\n") else text + "\r\n"
    _check_parsed(text)
    return text


def _check_parsed(text: str) -> None:
    """What aiortc will make of the offer: parseable, a receiving H.264 video section with ICE and DTLS."""
    try:
        parsed = aiortc_sdp.SessionDescription.parse(text)
    except Exception as e:  # any parser failure is the offer's fault
        log.info("unparseable SDP offer: %s: %s", type(e).__name__, str(e)[:200])
        detail = f": {str(e)[:80]}" if str(e) else ""
        raise SdpError(f"SDP offer: cannot be parsed ({type(e).__name__}{detail})") from None
    video = [m for m in parsed.media if m.kind == "video"]
    if not video:
        raise SdpError("SDP offer: no video media section (m=video)")
    mids = {str(m.rtp.muxId) for m in parsed.media}
    for group in parsed.group:
        if any(str(item) not in mids for item in group.items):
            raise SdpError(f"SDP offer: a=group:{group.semantic} names a media section (a=mid) the offer does not have")
    for m in video:
        if m.direction not in (None, "recvonly", "sendrecv"):
            raise SdpError("SDP offer: the video section must be recvonly (WHEP viewers receive)")
        if not any(c.mimeType.lower() == "video/h264" for c in m.rtp.codecs):
            raise SdpError("SDP offer: the browser offers no H.264 codec (a=rtpmap:... H264/90000)")
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise SdpError("SDP offer: no ICE credentials (a=ice-ufrag and a=ice-pwd)")
        if m.dtls is None or not m.dtls.fingerprints or m.dtls.role is None:
            raise SdpError("SDP offer: no usable DTLS parameters (a=fingerprint and a=setup)")
        for c in m.ice_candidates:
            if not 0 < c.port < 65536 or (c.relatedPort is not None and not 0 <= c.relatedPort < 65536):
                raise SdpError("SDP offer: an a=candidate has a port outside 1-65535")
