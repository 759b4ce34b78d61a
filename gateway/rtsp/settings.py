"""Settings of the RTSP server (section ``rtsp_out``)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RtspOutSettings"]


class RtspOutSettings(BaseModel):
    """The RTSP server for video walls and decoders: ``rtsp://HOST:PORT/cameras/{id}``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(False, description="Serve cameras over RTSP (on server.host).")
    port: int = Field(8554, ge=0, le=65535, description="RTSP port on server.host (0: any free port, for tests).")
    realm: str = Field("liandong", min_length=1, max_length=64, pattern=r"^[^\"\\]+$", description="Digest realm.")
    nonce_ttl_s: float = Field(
        60.0, gt=0, le=3600, description="A Digest nonce is accepted this long after it was issued (then stale)."
    )
    max_connections: int = Field(
        1024, ge=1, le=100_000, description="Open RTSP connections at most; one more is closed at once."
    )
    max_pending: int = Field(
        128,
        ge=1,
        le=100_000,
        description="Connections without a playing session at most (half-open, slow or unauthenticated); one "
        "more closes the oldest of them, so a flood cannot keep real clients out.",
    )
    max_head_bytes: int = Field(
        8192, ge=1024, le=65536, description="A request's line and headers at most; more closes the connection."
    )
    head_timeout_s: float = Field(
        10.0, gt=0, le=300, description="A request started must be complete within this; else the connection closes."
    )
    idle_timeout_s: float = Field(
        30.0, gt=0, le=3600, description="A connection without a session that sends nothing this long is closed."
    )
    session_timeout_s: int = Field(
        60,
        ge=5,
        le=3600,
        description="A UDP session without a request or RTCP report this long ends (announced in Session:).",
    )
    open_timeout_s: float = Field(
        8.0, gt=0, le=60, description="DESCRIBE waits this long for a camera that is not being pulled yet."
    )
    write_timeout_s: float = Field(
        10.0, gt=0, le=120, description="A TCP client that takes no data for this long is disconnected."
    )
    mtu: int = Field(1400, ge=576, le=65000, description="Largest RTP packet (payload and header) sent.")
