"""Checks on a WHEP offer before it reaches aiortc, so bad input gets a 400 with a reason."""

from __future__ import annotations

__all__ = ["SdpError", "check_offer"]


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
    return text if text.endswith("\n") else text + "\r\n"
