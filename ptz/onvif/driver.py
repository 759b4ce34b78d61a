"""The ONVIF PTZ driver: :class:`~ptz.ports.PtzDriver` over an :class:`~ptz.onvif.device.OnvifDevice`."""

from __future__ import annotations

from xml.sax.saxutils import escape

from ptz.onvif.device import OnvifDevice
from ptz.onvif.soap import NS
from ptz.ports import Preset, PtzCapabilities, PtzError, PtzPosition

__all__ = ["OnvifPtz"]


def _vector(tag: str, pan: float | None, tilt: float | None, zoom: float | None) -> str:
    pt = f'<tt:PanTilt x="{pan:.4f}" y="{tilt:.4f}"/>' if pan is not None and tilt is not None else ""
    zm = f'<tt:Zoom x="{zoom:.4f}"/>' if zoom is not None else ""
    return f"<tptz:{tag}>{pt}{zm}</tptz:{tag}>"


def _duration(seconds: float) -> str:
    return f"PT{max(0.1, seconds):.1f}S"


class OnvifPtz:
    """PTZ of one profile of one ONVIF device."""

    def __init__(self, device: OnvifDevice, profile: str) -> None:
        if device.ptz_url is None:
            raise PtzError("the device has no PTZ service")
        self.device, self.url = device, device.ptz_url
        self._profile = f"<tptz:ProfileToken>{escape(profile)}</tptz:ProfileToken>"

    async def _call(self, op: str, inner: str = "") -> None:
        await self.device.soap.call(self.url, op, f"<tptz:{op}>{self._profile}{inner}</tptz:{op}>")

    async def capabilities(self) -> PtzCapabilities:
        """From the PTZ node's supported spaces (``GetNodes``)."""
        r = await self.device.soap.call(self.url, "GetNodes", "<tptz:GetNodes/>")
        node = r.find("tptz:PTZNode", NS)
        if node is None:
            return PtzCapabilities()
        spaces = node.find("tt:SupportedPTZSpaces", NS)

        def has(name: str) -> bool:
            return spaces is not None and spaces.find(f"tt:{name}", NS) is not None

        try:
            presets = int(node.findtext("tt:MaximumNumberOfPresets", "0", NS) or 0)
        except ValueError:
            presets = 0
        return PtzCapabilities(
            continuous=has("ContinuousPanTiltVelocitySpace") or has("ContinuousZoomVelocitySpace"),
            absolute=has("AbsolutePanTiltPositionSpace"),
            relative=has("RelativePanTiltTranslationSpace"),
            home=(node.findtext("tt:HomeSupported", "false", NS) or "").strip() == "true",
            max_presets=presets,
        )

    async def position(self) -> PtzPosition | None:
        """``GetStatus``; None when the camera reports no position."""
        r = await self.device.soap.call(self.url, "GetStatus", f"<tptz:GetStatus>{self._profile}</tptz:GetStatus>")
        pos = r.find("tptz:PTZStatus/tt:Position", NS)
        if pos is None:
            return None
        pt, zm = pos.find("tt:PanTilt", NS), pos.find("tt:Zoom", NS)
        moving = "MOVING" in (r.findtext("tptz:PTZStatus/tt:MoveStatus/tt:PanTilt", "", NS) or "").upper()
        try:
            return PtzPosition(
                pan=float(pt.get("x", "0")) if pt is not None else 0.0,
                tilt=float(pt.get("y", "0")) if pt is not None else 0.0,
                zoom=float(zm.get("x", "0")) if zm is not None else 0.0,
                moving=moving,
            )
        except ValueError:
            return None

    async def presets(self) -> list[Preset]:
        """``GetPresets``."""
        r = await self.device.soap.call(self.url, "GetPresets", f"<tptz:GetPresets>{self._profile}</tptz:GetPresets>")
        return [
            Preset(p.get("token", ""), (p.findtext("tt:Name", "", NS) or "").strip())
            for p in r.findall("tptz:Preset", NS)
        ]

    async def continuous(self, pan: float, tilt: float, zoom: float, timeout_s: float) -> None:
        """``ContinuousMove`` with a ``Timeout``: the camera stops by itself if we never say stop."""
        await self._call(
            "ContinuousMove",
            _vector("Velocity", pan, tilt, zoom) + f"<tptz:Timeout>{_duration(timeout_s)}</tptz:Timeout>",
        )

    async def stop(self) -> None:
        """``Stop`` pan, tilt and zoom."""
        await self._call("Stop", "<tptz:PanTilt>true</tptz:PanTilt><tptz:Zoom>true</tptz:Zoom>")

    async def absolute(self, pan: float, tilt: float, zoom: float | None) -> None:
        """``AbsoluteMove`` in the generic position spaces."""
        await self._call("AbsoluteMove", _vector("Position", pan, tilt, zoom))

    async def relative(self, pan: float, tilt: float, zoom: float | None) -> None:
        """``RelativeMove`` in the generic translation spaces."""
        await self._call("RelativeMove", _vector("Translation", pan, tilt, zoom))

    async def home(self) -> None:
        """``GotoHomePosition``."""
        await self._call("GotoHomePosition")

    async def goto_preset(self, token: str) -> None:
        """``GotoPreset``."""
        await self._call("GotoPreset", f"<tptz:PresetToken>{escape(token)}</tptz:PresetToken>")

    async def set_preset(self, name: str, token: str | None = None) -> str:
        """``SetPreset``; the token the camera gave it."""
        inner = f"<tptz:PresetName>{escape(name)}</tptz:PresetName>"
        if token:
            inner += f"<tptz:PresetToken>{escape(token)}</tptz:PresetToken>"
        r = await self.device.soap.call(
            self.url, "SetPreset", f"<tptz:SetPreset>{self._profile}{inner}</tptz:SetPreset>"
        )
        return (r.findtext("tptz:PresetToken", "", NS) or "").strip()

    async def close(self) -> None:
        """Close the device's connections."""
        await self.device.close()
