"""Checks on a WHEP offer before it reaches aiortc, so bad input gets a 400 with a reason.

The offer is also parsed with aiortc's own parser here, before the camera is opened: aiortc raises
whatever its parser trips on (KeyError, AssertionError, StopIteration, ...) for offers that pass
the line checks, and a bad offer must neither cost an RTSP session nor wait for a camera.
"""

from __future__ import annotations

import logging

from aiortc import RTCRtpCodecParameters
from aiortc import sdp as aiortc_sdp

__all__ = ["SdpError", "answer_as_dtls_server", "check_offer"]

# What aiortc sends H.264 as (its only H.264 capabilities): a viewer's offer must accept one of these.
_SENDABLE_PROFILES = {
    aiortc_sdp.H264Profile.PROFILE_CONSTRAINED_BASELINE: "constrained baseline (42e0..)",
    aiortc_sdp.H264Profile.PROFILE_BASELINE: "baseline (4200..)",
}

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
        h264 = [c for c in m.rtp.codecs if c.mimeType.lower() == "video/h264"]
        if not h264:
            raise SdpError("SDP offer: the browser offers no H.264 codec (a=rtpmap:... H264/90000)")
        _check_h264_parameters(h264)
        if m.ice is None or not m.ice.usernameFragment or not m.ice.password:
            raise SdpError("SDP offer: no ICE credentials (a=ice-ufrag and a=ice-pwd)")
        if m.dtls is None or not m.dtls.fingerprints or m.dtls.role is None:
            raise SdpError("SDP offer: no usable DTLS parameters (a=fingerprint and a=setup)")
        for c in m.ice_candidates:
            if not 0 < c.port < 65536 or (c.relatedPort is not None and not 0 <= c.relatedPort < 65536):
                raise SdpError("SDP offer: an a=candidate has a port outside 1-65535")


def _h264_terms(codec: RTCRtpCodecParameters) -> tuple[str, str, bool]:
    """(packetization mode, profile-level-id as written, whether its profile is one we send) of an offered H.264."""
    mode = str(codec.parameters.get("packetization-mode", "0"))  # RFC 6184: absent means 0
    written = codec.parameters.get("profile-level-id")
    try:
        # No profile-level-id means constrained baseline (RFC 6184 says level 1; aiortc assumes 42e01f).
        profile, _level = aiortc_sdp.parse_h264_profile_level_id(str(written or "42e01f"))
    except ValueError:
        return mode, str(written), False
    return mode, str(written or "absent"), profile in _SENDABLE_PROFILES


def _check_h264_parameters(codecs: list[RTCRtpCodecParameters]) -> None:
    """Refuse, in the offer's own terms, H.264 the gateway cannot send (aiortc itself would only say
    "Failed to set remote video description send parameters")."""
    terms = [(c.payloadType, *_h264_terms(c)) for c in codecs]
    if any(mode == "1" and profile_ok for _, mode, _, profile_ok in terms):
        return
    offered = "; ".join(
        f"payload {pt}: packetization-mode={mode}, profile-level-id={prof}" for pt, mode, prof, _ in terms
    )
    wanted = f"packetization-mode=1 with profile {' or '.join(_SENDABLE_PROFILES.values())}"
    if not any(mode == "1" for _, mode, _, _ in terms):
        lacks = "packetization-mode=1 (the gateway sends FU-A/STAP-A packets, RFC 6184 non-interleaved mode)"
    elif not any(ok for *_, ok in terms):
        lacks = f"a profile-level-id of profile {' or '.join(_SENDABLE_PROFILES.values())}"
    else:
        lacks = "one codec with both"
    raise SdpError(
        f"SDP offer: no H.264 codec the gateway can send ({wanted}); the offer lacks {lacks} (offered: {offered})"
    )


def answer_as_dtls_server(offer: str, answer: str) -> str:
    """The answer with ``a=setup:passive`` (the gateway as DTLS server) where the offer let us choose.

    aiortc answers ``actpass`` offers with ``active`` and, as DTLS client, offers only ECDHE-ECDSA
    cipher suites; players with an RSA certificate (GStreamer's webrtcbin) then fail the handshake
    with "no shared cipher". As DTLS server the player's ClientHello lists the suites and ours is
    chosen by our (ECDSA) certificate, so every WebRTC stack shares one. aiortc takes its DTLS role
    from the answer given to ``setLocalDescription``, so rewriting the line is the whole change.
    Offers that say ``active`` already get ``passive``; ``passive`` offers still get ``active``.
    """
    offer_sections = _sections(offer)
    answer_sections = _sections(answer)
    session_actpass = "a=setup:actpass" in offer_sections[0]
    out = [answer_sections[0]]
    for i, section in enumerate(answer_sections[1:], start=1):
        offered = offer_sections[i] if i < len(offer_sections) else []
        role = next((ln for ln in offered if ln.startswith("a=setup:")), None)
        if role == "a=setup:actpass" or (role is None and session_actpass):
            section = ["a=setup:passive" if ln == "a=setup:active" else ln for ln in section]
        out.append(section)
    return "".join(ln + "\r\n" for sec in out for ln in sec)


def _sections(sdp: str) -> list[list[str]]:
    """The session part and each media section of an SDP, as lists of lines."""
    sections: list[list[str]] = [[]]
    for ln in sdp.replace("\r\n", "\n").split("\n"):
        if not ln:
            continue
        if ln.startswith("m="):
            sections.append([])
        sections[-1].append(ln)
    return sections
