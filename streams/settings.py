"""Settings owned by the stream core (composed into :class:`gateway.settings.Settings` as ``hub`` and
``transcoder``; the TOML tables and ``LIANDONG_HUB__*`` / ``LIANDONG_TRANSCODER__*`` names are the gateway's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["HubSettings", "TranscoderSettings"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HubSettings(_Section):
    """The stream hub: one upstream session per camera."""

    idle_close_s: float = Field(10.0, ge=0, le=3600, description="Close upstream this long after the last reader.")
    reader_queue_packets: int = Field(300, ge=10, le=10000)
    open_timeout_s: float = Field(8.0, gt=0, le=120)
    read_timeout_s: float = Field(5.0, gt=0, le=120)
    reconnect_initial_s: float = Field(0.5, gt=0, le=60)
    reconnect_max_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="Longest wait between retries. An upstream exists only while someone watches, and viewers must"
        " resume within ~3 s of the camera's return: this plus the camera's answer time.",
    )
    max_gop_cache_packets: int = Field(400, ge=10, le=10000)


class TranscoderSettings(_Section):
    """Shared transcodes (one per camera and variant, never per viewer) for what browsers cannot play."""

    enabled: bool = True
    max_concurrent: int = Field(2, ge=0, le=256, description="Cap on running transcodes; beyond it viewers get 503.")
    encoder: Literal["software", "nvenc", "vaapi", "qsv"] = Field(
        "software", description="H.264 encoder; a hardware one that fails falls back to libx264."
    )
    decoder: Literal["software", "cuda", "vaapi", "qsv"] = Field(
        "software", description="Where to decode (-hwaccel); a hardware decoder that fails falls back on its own."
    )
    ffmpeg_bin: str = Field("ffmpeg", description="The ffmpeg executable.")
    keyframe_s: float = Field(1.0, gt=0, le=10, description="Keyframe interval of transcoded streams.")
    bitrate_kbps: int = Field(2500, ge=100, le=50000, description="Bitrate of H.265 -> H.264 transcodes.")
    low_height: int = Field(360, ge=90, le=2160, description="Picture height of the low-bitrate variant.")
    low_bitrate_kbps: int = Field(400, ge=50, le=10000, description="Bitrate of the low-bitrate variant.")
