"""Settings of the GB/T 28181 device side (composed into :class:`gateway.settings.Settings` as
``gb28181``; TOML table ``[gb28181]``, env ``LIANDONG_GB28181__*``)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, StringConstraints, model_validator

__all__ = ["DEVICE_ID", "Gb28181Settings", "SuperiorSettings"]

DEVICE_ID = r"^[0-9]{20}$"
_Id = Annotated[str, StringConstraints(pattern=DEVICE_ID)]


class SuperiorSettings(BaseModel):
    """One superior platform Liandong registers to as a lower platform (the cascade,
    ``docs/cascade.md``): its SIP id, domain and address, the password it gave us, and whose view
    of the cameras it gets (``view_as``: a policy subject, ``dept:<department>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: _Id = Field(description="The superior platform's SIP id (20 digits).")
    domain: str = Field(min_length=1, max_length=64, description="The superior's SIP domain (realm).")
    host: str = Field(min_length=1, max_length=253, description="The superior's SIP address.")
    port: int = Field(5060, ge=1, le=65535, description="The superior's SIP port (UDP).")
    password: SecretStr = Field(SecretStr(""), description="Digest password the superior gave this platform.")
    view_as: str = Field(
        pattern=r"^dept:[^\s:]{1,64}$",
        description="The policy subject whose view the superior gets (dept:<department>): it sees and plays"
        " what an operator of that department alone may view live.",
    )
    local_port: int = Field(0, ge=0, le=65535, description="Our UDP port for this superior (0: any free port).")
    expires_s: int = Field(3600, ge=60, le=86400, description="Registration expiry asked for; refreshed at half.")
    keepalive_s: float = Field(60.0, gt=0, le=3600, description="Keepalive MESSAGE interval.")
    keepalive_misses: int = Field(3, ge=1, le=100, description="Unanswered keepalives before registering again.")
    retry_s: float = Field(5.0, gt=0, le=600, description="First wait before registering again after a failure.")
    civil_code: str = Field(
        "", pattern=r"^[0-9]{0,12}$", description="Civil code of cameras without a civil:<code> tag (default: the"
        " first 6 digits of platform_id).",
    )  # fmt: skip


class Gb28181Settings(BaseModel):
    """Where devices register (the SIP server id, domain, address, port and password a device is
    configured with) and how their media is received."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = False
    sip_host: str = Field("127.0.0.1", description="Address the SIP endpoint (UDP and TCP) listens on.")
    sip_port: int = Field(5060, ge=1, le=65535, description="SIP port, UDP and TCP.")
    platform_id: _Id = Field("34020000002000000001", description="This platform's SIP id (20 digits).")
    domain: str = Field("3402000000", min_length=1, max_length=64, description="SIP domain (realm).")
    password: SecretStr = Field(SecretStr(""), description="Digest password of devices without their own.")
    device_passwords: dict[_Id, SecretStr] = Field(default_factory=dict, description="Per-device digest passwords.")
    auto_accept: bool = Field(False, description="Import unknown devices at once instead of listing them.")
    media_host: str = Field("127.0.0.1", description="Address written into INVITE SDP; RTP is received there.")
    media_ports: tuple[int, int] = Field((30000, 30499), description="RTP port range (inclusive).")
    media_transport: Literal["udp", "tcp", "auto"] = Field(
        "udp",
        description="RTP over UDP, over TCP (RFC 4571; the device connects to media_host), or auto: the transport"
        " the device registered over.",
    )
    keepalive_timeout_s: float = Field(180.0, gt=0, le=3600, description="No keepalive this long: offline.")
    register_expires_max_s: int = Field(3600, ge=60, le=86400, description="Longest registration granted.")
    nonce_ttl_s: float = Field(60.0, gt=0, le=600, description="Digest nonces expire after this (single use).")
    catalog_max_channels: int = Field(4096, ge=1, le=100_000, description="Channels kept per device catalog.")
    max_devices: int = Field(10_000, ge=1, le=1_000_000, description="Registered plus waiting devices.")
    register_rate_per_s: float = Field(20.0, gt=0, description="REGISTERs per second from one address.")
    transaction_timeout_s: float = Field(8.0, gt=0, le=64, description="A request of ours unanswered: failed.")
    rtp_timeout_s: float = Field(5.0, gt=0, le=120, description="No RTP this long: BYE and INVITE again.")
    superiors: tuple[SuperiorSettings, ...] = Field(
        (), description="Superior platforms this platform registers to (the cascade; works without enabled)."
    )

    @model_validator(mode="after")
    def _ports(self) -> Gb28181Settings:
        lo, hi = self.media_ports
        if not 1024 <= lo <= hi <= 65535:
            raise ValueError("media_ports: give [low, high] with 1024 <= low <= high <= 65535")
        ids = [sup.id for sup in self.superiors]
        if len(set(ids)) != len(ids):
            raise ValueError("superiors: each superior platform id at most once")
        return self
