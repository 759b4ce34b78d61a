"""Opening a camera for the stream core's live pull (its ``streams.rtsp.CameraOpener``).

The checks are the registry's: the host must lie in ``cameras.allowed_networks`` (after DNS, on
every connect: :class:`~camera_registry.egress.CameraNetworks`), FFmpeg may run only the RTSP
family of protocols, and a failure is told in fixed words that never carry the URL.
"""

from __future__ import annotations

from av.container import InputContainer

from camera_registry.egress import CameraNetworks
from camera_registry.probe import classify_error
from camera_registry.urls import FFMPEG_PROTOCOL_WHITELIST

__all__ = ["CheckedOpener"]


class CheckedOpener:
    """Opens camera URLs where ``networks`` allow, with FFmpeg held to :data:`FFMPEG_PROTOCOL_WHITELIST`."""

    def __init__(self, networks: CameraNetworks | None = None) -> None:
        self.networks = networks or CameraNetworks()

    def open(self, url: str, *, options: dict[str, str], timeout: tuple[float, float]) -> InputContainer:
        """``av.open`` the camera (blocking); raises ``CameraAddressRefused`` outside the networks."""
        opened: InputContainer = self.networks.open(
            url, options={**options, "protocol_whitelist": FFMPEG_PROTOCOL_WHITELIST}, timeout=timeout
        )
        return opened

    def failure_reason(self, error: BaseException) -> str:
        """A fixed, credential-free reason (``camera_registry.probe.classify_error``)."""
        return classify_error(error)[1]
