"""ffmpeg command lines for the shared transcodes (built with ffmpeg-python).

Input is the hub's access units as an Annex B elementary stream on stdin; output is H.264 Annex B
on stdout with an access unit delimiter in front of every picture (so pictures can be split without
parsing slices) and SPS/PPS repeated before every keyframe (so any reader can start at one).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

import ffmpeg

__all__ = ["Decoder", "Encoder", "TranscodeSpec", "build_command"]


class Encoder(enum.StrEnum):
    """H.264 encoders, software or hardware."""

    software = "software"  # libx264
    nvenc = "nvenc"
    vaapi = "vaapi"
    qsv = "qsv"


class Decoder(enum.StrEnum):
    """Where the camera's stream is decoded (``-hwaccel``)."""

    software = "software"
    cuda = "cuda"  # NVDEC
    vaapi = "vaapi"
    qsv = "qsv"


@dataclass(frozen=True, slots=True)
class TranscodeSpec:
    """One transcode: what comes in, what goes out."""

    input_codec: str  # "hevc" or "h264"
    fps: float
    height: int | None = None  # scale to this height (keeps the aspect ratio); None keeps the size
    bitrate_kbps: int = 2500
    keyframe_s: float = 1.0
    encoder: Encoder = Encoder.software
    decoder: Decoder = Decoder.software
    vaapi_device: str = "/dev/dri/renderD128"


_INPUT_FORMAT = {"hevc": "hevc", "h265": "hevc", "h264": "h264"}


def build_command(spec: TranscodeSpec, ffmpeg_bin: str = "ffmpeg") -> list[str]:
    """The argument vector (no shell) for one transcode process."""
    fmt = _INPUT_FORMAT.get(spec.input_codec)
    if fmt is None:
        raise ValueError(f"input_codec: cannot transcode from '{spec.input_codec}'")
    fps = spec.fps if 1 <= spec.fps <= 120 else 25.0
    gop = max(1, round(fps * spec.keyframe_s))
    global_args = ["-hide_banner", "-nostdin", "-loglevel", "error"]
    in_kwargs: dict[str, object] = {
        "format": fmt,
        "framerate": f"{fps:g}",
        "probesize": 32,
        "analyzeduration": 0,
        "fflags": "+nobuffer+genpts",
        "flags": "low_delay",
    }
    if spec.decoder is not Decoder.software:
        in_kwargs["hwaccel"] = spec.decoder.value  # decoded frames come back to memory for the filters
    if spec.encoder is Encoder.vaapi:
        global_args += ["-vaapi_device", spec.vaapi_device]
    stream = ffmpeg.input("pipe:0", **in_kwargs).video
    if spec.height:
        stream = stream.filter("scale", -2, spec.height)
    kbps = spec.bitrate_kbps
    out_kwargs: dict[str, object] = {
        "format": "h264",
        "fps_mode": "passthrough",
        "g": gop,
        "bf": 0,
        "b:v": f"{kbps}k",
        "maxrate": f"{kbps * 5 // 4}k",
        "bufsize": f"{kbps}k",
        "flush_packets": 1,
        "bsf:v": "h264_metadata=aud=insert,dump_extra=freq=keyframe",
    }
    if spec.encoder is Encoder.software:
        out_kwargs.update({"vcodec": "libx264", "preset": "veryfast", "tune": "zerolatency", "pix_fmt": "yuv420p"})
        out_kwargs["x264-params"] = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    elif spec.encoder is Encoder.nvenc:
        out_kwargs.update({"vcodec": "h264_nvenc", "preset": "p1", "tune": "ll", "zerolatency": 1})
    elif spec.encoder is Encoder.vaapi:
        stream = stream.filter("format", "nv12").filter("hwupload")
        out_kwargs.update({"vcodec": "h264_vaapi"})
    elif spec.encoder is Encoder.qsv:
        out_kwargs.update({"vcodec": "h264_qsv", "preset": "veryfast", "look_ahead": 0})
    args = [str(a) for a in ffmpeg.output(stream, "pipe:1", **out_kwargs).compile(cmd=ffmpeg_bin)]
    # Global options go first: ffmpeg ignores options after the last output.
    return [args[0], *global_args, *args[1:]]
