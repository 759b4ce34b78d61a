"""WS-Discovery against the fixture's ONVIF device: unicast probes on loopback, no multicast."""

from __future__ import annotations

import socket

from fixtures.onvif_camera import OnvifCamera
from ptz.onvif import probe
from ptz.onvif.discovery import probe_message


async def test_unicast_probe_finds_the_device_with_its_scopes() -> None:
    with OnvifCamera(name="Gate 3", model="LD-PTZ-9") as cam:
        # A listed address where nothing answers is harmless (ICMP unreachable or silence).
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            silent = s.getsockname()
            found = await probe([cam.discovery_address, silent], wait_s=1.0)
    assert len(found) == 1
    d = found[0]
    assert d.xaddrs == (cam.url,)
    assert d.endpoint == cam.endpoint
    assert d.scope("name") == "Gate 3" and d.scope("hardware") == "LD-PTZ-9"
    assert d.source == "127.0.0.1"


def test_answers_to_other_probes_are_ignored() -> None:
    with OnvifCamera() as cam:
        reply = cam.probe_match(probe_message("urn:uuid:someone-else"))
    from ptz.onvif.discovery import _parse

    assert reply is not None
    assert _parse(reply, "urn:uuid:mine", "127.0.0.1") == []
    assert [d.xaddrs for d in _parse(reply, "urn:uuid:someone-else", "127.0.0.1")] == [(cam.url,)]
