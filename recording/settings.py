"""Settings owned by the recorder (composed into :class:`gateway.settings.Settings` as ``recording``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["RecordingSettings"]


class RecordRule(BaseModel):
    """Continuous recording of camera groups (ids of the viewing policy's groups) and cameras, kept
    ``retention_days``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,48}$")
    groups: list[str] = Field(default_factory=list, description="Camera groups to record around the clock.")
    cameras: list[str] = Field(default_factory=list, description="Single cameras to record around the clock.")
    retention_days: float = Field(30.0, gt=0, le=3650)


class RecordingSettings(BaseModel):
    """Where and how recordings are written and how long incident recordings may run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = Field(True, description="Record incidents' cameras and manual recordings.")
    path: Path | None = Field(None, description="Where segments go; unset = <data_dir>/recordings.")
    segment_s: float = Field(
        300.0, ge=2, le=86400, description="Segment length: a new file starts at the first keyframe after this."
    )
    fragment_s: float = Field(
        1.0, ge=0.2, le=10, description="fMP4 fragment length; each is on disk when it closes (a crash loses one)."
    )
    pre_roll_s: float = Field(
        0.0,
        ge=0,
        le=120,
        description="Keep this many seconds of cameras pulled anyway in memory, so a recording starts that long"
        " before its alarm (whole GOPs; 0: only the hub's cached GOP). Costs memory: about the bitrate times this.",
    )
    incident_max_h: float = Field(24.0, gt=0, le=720, description="Stop an incident's recording after this long.")
    manual_max_s: float = Field(3600.0, gt=0, le=86400, description="Longest manual recording.")
    min_free_mb: int = Field(
        256, ge=0, description="Recording pauses below this much free space and resumes by itself above it."
    )
    rules: list[RecordRule] = Field(default_factory=list, description="Continuous recording (``[[recording.rules]]``).")
    retention_days: float = Field(
        90.0, gt=0, le=3650, description="How long incident and manual recordings are kept (rules have their own)."
    )
    quota_gb: float | None = Field(
        None, gt=0, description="Most the recordings may take; the oldest unlocked go first."
    )
    low_space_mb: int = Field(
        512, ge=0, description="Below this much free space the oldest unlocked segments are deleted."
    )
    retention_check_s: float = Field(60.0, ge=1, le=3600, description="How often retention and rules are applied.")
    retry_s: float = Field(2.0, gt=0, le=300, description="Wait before re-reading a camera that was lost.")

    def root(self, data_dir: Path) -> Path:
        """The recordings directory."""
        return self.path if self.path is not None else data_dir / "recordings"
