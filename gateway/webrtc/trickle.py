"""Trickle ICE for WHEP sessions: RFC 8840 SDP fragments (``application/trickle-ice-sdpfrag``).

A player that trickles POSTs its offer before its candidates are gathered and sends them later
in ``PATCH`` requests on the session URL (WHIP, RFC 9725 section 4.3; WHEP works the same way). A
fragment carries the ICE credentials, one ``m=`` line per media section with its ``a=mid`` and
``a=candidate`` lines, and ``a=end-of-candidates`` when gathering is done. Only what ICE needs is
read; other attributes are ignored, as RFC 8840 allows. New credentials mean an ICE restart, which
aiortc cannot do (it has no restartIce and keeps one ICE session per transport): the caller
answers those with a clear refusal instead of feeding them in.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from aiortc import RTCIceCandidate
from aiortc.sdp import candidate_from_sdp

__all__ = ["CONTENT_TYPE", "FragmentError", "TrickleFragment", "parse_fragment"]

CONTENT_TYPE = "application/trickle-ice-sdpfrag"
_TYPES = frozenset({"host", "srflx", "prflx", "relay"})
_PROTOCOLS = frozenset({"udp", "tcp"})
_TOKEN = re.compile(r"^[A-Za-z0-9+/]{1,32}$")  # ice-char (RFC 8839): foundation
_HOSTNAME = re.compile(r"^[A-Za-z0-9-]{1,63}(\.[A-Za-z0-9-]{1,63})*$")


class FragmentError(ValueError):
    """The fragment is not one we can use; the message names the line and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class TrickleFragment:
    """What an RFC 8840 fragment says: credentials, candidates by media section, end of candidates."""

    ufrag: str | None
    pwd: str | None
    candidates: list[RTCIceCandidate] = field(default_factory=list)
    end_of_candidates: bool = False


def _candidate(value: str, line_no: int) -> RTCIceCandidate:
    """An ``a=candidate:`` value checked field by field (aiortc's own parser only asserts a length)."""
    bits = value.split()
    where = f"line {line_no} (a=candidate)"
    if len(bits) < 8 or bits[6] != "typ":
        raise FragmentError(
            f"{where}: expected '<foundation> <component> <transport> <priority> <address> <port> typ <type>'"
        )
    foundation, component, transport, priority, address, port, _, ctype = bits[:8]
    if not _TOKEN.match(foundation):
        raise FragmentError(f"{where}: foundation {foundation!r} is not 1-32 ice-chars")
    if not component.isdigit() or not 1 <= int(component) <= 256:
        raise FragmentError(f"{where}: component {component!r} is not 1-256")
    if transport.lower() not in _PROTOCOLS:
        raise FragmentError(f"{where}: transport {transport!r} is not udp or tcp")
    if not priority.isdigit() or not 1 <= int(priority) < 2**32:
        raise FragmentError(f"{where}: priority {priority!r} is not 1 to 2^32-1")
    try:
        ipaddress.ip_address(address)
    except ValueError:
        if not (address.endswith(".local") and _HOSTNAME.match(address)):  # mDNS names hide local addresses
            raise FragmentError(
                f"{where}: address {address!r} is neither an IP address nor an mDNS .local name"
            ) from None
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise FragmentError(f"{where}: port {port!r} is not 1-65535")
    if ctype not in _TYPES:
        raise FragmentError(f"{where}: type {ctype!r} is not host, srflx, prflx or relay")
    extras = bits[8:]
    for i in range(0, len(extras) - 1, 2):
        if extras[i] == "rport" and (not extras[i + 1].isdigit() or not 0 <= int(extras[i + 1]) <= 65535):
            raise FragmentError(f"{where}: rport {extras[i + 1]!r} is not 0-65535")
    return candidate_from_sdp(value)


def parse_fragment(raw: bytes, max_bytes: int, mids: list[str]) -> TrickleFragment:
    """Parse a PATCH body; ``mids`` are the session's media sections (``a=mid``) in offer order.

    Raises FragmentError naming the offending line.
    """
    if not raw:
        raise FragmentError("fragment: empty body (send a=candidate or a=end-of-candidates lines)")
    if len(raw) > max_bytes:
        raise FragmentError(f"fragment: larger than {max_bytes} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise FragmentError("fragment: not UTF-8 text") from None
    ufrag: str | None = None
    pwd: str | None = None
    candidates: list[RTCIceCandidate] = []
    end = False
    section = -1  # -1: before any m= line (session level)
    mid: str | None = None
    pending: list[RTCIceCandidate] = []  # candidates of the current section, before its a=mid is known

    def close_section() -> None:
        index = max(section, 0)  # session-level candidates belong to the first (the bundled) section
        for c in pending:
            c.sdpMid = mid if mid is not None else (mids[index] if index < len(mids) else None)
            c.sdpMLineIndex = index
        candidates.extend(pending)
        pending.clear()

    for n, line in enumerate(text.replace("\r\n", "\n").split("\n"), start=1):
        line = line.strip()
        if not line:
            continue
        if "\x00" in line or len(line) < 2 or line[1] != "=" or not line[0].isalpha():
            raise FragmentError(f"line {n}: malformed (expected <type>=<value>)")
        kind, value = line[0], line[2:]
        if kind == "m":
            close_section()
            section += 1
            mid = None
            if section >= len(mids):
                raise FragmentError(f"line {n} (m=): the session has {len(mids)} media section(s), this is one more")
            continue
        if kind != "a":
            continue  # c=, b=, ... lines of an m= section: nothing ICE needs
        name, _, arg = value.partition(":")
        if name == "ice-ufrag":
            if ufrag is not None and arg != ufrag:
                raise FragmentError(f"line {n} (a=ice-ufrag): differs from an earlier a=ice-ufrag in the fragment")
            ufrag = arg
        elif name == "ice-pwd":
            pwd = arg
        elif name == "mid":
            if section < 0:
                raise FragmentError(f"line {n} (a=mid): before any m= line")
            if arg not in mids:
                raise FragmentError(
                    f"line {n} (a=mid): {arg!r} names no media section of the session ({', '.join(mids)})"
                )
            mid = arg
        elif name == "candidate":
            pending.append(_candidate(arg, n))
        elif name == "end-of-candidates":
            end = True
    close_section()
    if not candidates and not end and ufrag is None:
        raise FragmentError("fragment: no a=candidate, a=end-of-candidates or ICE credentials in it")
    return TrickleFragment(ufrag=ufrag, pwd=pwd, candidates=candidates, end_of_candidates=end)
