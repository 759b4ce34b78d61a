"""MPEG-2 program stream (ISO/IEC 13818-1 2.5) as GB/T 28181 carries video: a muxer and an
incremental demuxer for H.264 / H.265 elementary streams.

The demuxer takes bytes in any slicing (RTP payloads cut a pack anywhere), resynchronises on the
next start code after garbage, and returns :class:`Frame` objects: one elementary-stream unit per
PTS, in Annex B, with its 90 kHz PTS. Frames are taken from the PES timestamps, never from RTP
(devices send RTP timestamps in other clocks and restart them). The muxer writes what devices write:
a pack header per frame, the system header and stream map before keyframes, PES packets of at most
64 KiB. Both are reusable on either side (a device emulator, a cascade to an upper platform).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["STREAM_TYPES", "Frame", "PsDemuxer", "PsMuxer", "crc32_mpeg"]

STREAM_TYPES = {0x1B: "h264", 0x24: "hevc", 0x10: "mpeg4"}  # PSM stream_type -> codec
_TYPE_OF = {"h264": 0x1B, "hevc": 0x24, "h265": 0x24}
_VIDEO_ID = 0xE0
_MAX_PES_PAYLOAD = 65_000  # PES_packet_length is 16 bits
_MAX_FRAME = 4 * 1024 * 1024  # a 4K keyframe is well under this; beyond it is an attack or a lost PTS
_PACK, _SYSTEM, _PSM, _END = 0xBA, 0xBB, 0xBC, 0xB9


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        c = i << 24
        for _ in range(8):
            c = ((c << 1) ^ 0x04C11DB7) if c & 0x80000000 else (c << 1)
        table.append(c & 0xFFFFFFFF)
    return table


_CRC = _crc_table()


def crc32_mpeg(data: bytes) -> int:
    """CRC-32/MPEG-2 (the program stream map's)."""
    crc = 0xFFFFFFFF
    for b in data:
        crc = ((crc << 8) & 0xFFFFFFFF) ^ _CRC[((crc >> 24) ^ b) & 0xFF]
    return crc


def _ts_bytes(prefix: int, ts: int) -> bytes:
    ts &= (1 << 33) - 1
    return bytes(
        [
            (prefix << 4) | (((ts >> 30) & 0x07) << 1) | 1,
            (ts >> 22) & 0xFF,
            (((ts >> 15) & 0x7F) << 1) | 1,
            (ts >> 7) & 0xFF,
            ((ts & 0x7F) << 1) | 1,
        ]
    )


def _read_ts(b: bytes) -> int:
    return ((b[0] >> 1) & 0x07) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


@dataclass(frozen=True, slots=True)
class Frame:
    """One elementary-stream unit: Annex B bytes of one PTS."""

    codec: str
    pts: int  # 90 kHz, 33 bits as sent
    data: bytes


class PsMuxer:
    """Writes access units as a program stream (one pack per unit)."""

    def __init__(self, codec: str = "h264", mux_rate: int = 6106) -> None:
        if codec not in _TYPE_OF:
            raise ValueError(f"codec {codec!r}: only h264 and hevc")
        self.stream_type = _TYPE_OF[codec]
        self.mux_rate = mux_rate  # units of 50 bytes/s; informative only

    def pack_header(self, scr: int) -> bytes:
        """``00 00 01 BA``: SCR (90 kHz base, extension 0), mux rate, no stuffing."""
        scr &= (1 << 33) - 1
        b = bytearray(b"\x00\x00\x01\xba")
        b += bytes(
            [
                0x44 | (((scr >> 30) & 0x07) << 3) | ((scr >> 28) & 0x03),
                (scr >> 20) & 0xFF,
                (((scr >> 15) & 0x1F) << 3) | 0x04 | ((scr >> 13) & 0x03),
                (scr >> 5) & 0xFF,
                ((scr & 0x1F) << 3) | 0x04,
                0x01,
            ]
        )
        r = self.mux_rate
        b += bytes([(r >> 14) & 0xFF, (r >> 6) & 0xFF, ((r & 0x3F) << 2) | 0x03, 0xF8])
        return bytes(b)

    def system_header(self) -> bytes:
        """``00 00 01 BB`` for one video stream."""
        # rate bound, no audio, locked video, one video stream; P-STD buffer 128 KiB
        body = bytes([0x80, 0x01, 0x01, 0x00, 0xE1, 0xFF, _VIDEO_ID, 0xE0, 0x80])
        return b"\x00\x00\x01\xbb" + len(body).to_bytes(2, "big") + body

    def stream_map(self) -> bytes:
        """``00 00 01 BC``: the video stream's type, with its CRC."""
        es_map = bytes([self.stream_type, _VIDEO_ID, 0x00, 0x00])
        body = bytes([0xE0, 0xFF, 0x00, 0x00]) + len(es_map).to_bytes(2, "big") + es_map
        length = len(body) + 4
        head = b"\x00\x00\x01\xbc" + length.to_bytes(2, "big")
        return head + body + crc32_mpeg(head + body).to_bytes(4, "big")

    def pes(self, data: bytes, pts: int | None) -> bytes:
        """PES packets of the video stream carrying ``data`` (PTS on the first only)."""
        out = bytearray()
        for i in range(0, max(len(data), 1), _MAX_PES_PAYLOAD):
            chunk = data[i : i + _MAX_PES_PAYLOAD]
            header = (
                bytes([0x80, 0x80, 0x05]) + _ts_bytes(0x2, pts) if (i == 0 and pts is not None) else b"\x80\x00\x00"
            )
            out += b"\x00\x00\x01" + bytes([_VIDEO_ID]) + (len(header) + len(chunk)).to_bytes(2, "big") + header + chunk
        return bytes(out)

    def mux(self, data: bytes, pts: int, keyframe: bool) -> bytes:
        """One access unit (Annex B) as a pack."""
        out = self.pack_header(max(pts - 3600, 0))
        if keyframe:
            out += self.system_header() + self.stream_map()
        return out + self.pes(data, pts)


class PsDemuxer:
    """Incremental program-stream demuxer: :meth:`feed` bytes, get finished :class:`Frame` objects.

    A frame is finished when a video PES with another PTS starts, or on :meth:`flush` (the end of an
    RTP packet with the marker bit, when a device sets it). Counters say what was skipped.
    """

    def __init__(self, max_buffer: int = 8 * 1024 * 1024) -> None:
        self._buf = bytearray()
        self._max_buffer = max_buffer
        self.codec = "h264"  # until a stream map says otherwise
        self._pending = bytearray()
        self._pending_pts: int | None = None
        self.resyncs = 0  # garbage skipped to the next start code
        self.dropped_frames = 0  # too large, or data without a PTS to hang it on
        self.other_streams = 0  # audio and private PES packets ignored

    def feed(self, data: bytes) -> Iterator[Frame]:
        """Add bytes (any slicing); yield every frame they finish."""
        self._buf += data
        if len(self._buf) > self._max_buffer:  # a PES length that never completes: start over
            self._buf.clear()
            self.resyncs += 1
        pos = 0
        buf = self._buf
        while True:
            if len(buf) - pos < 4:
                break
            if buf[pos] != 0 or buf[pos + 1] != 0 or buf[pos + 2] != 1:
                nxt = buf.find(b"\x00\x00\x01", pos + 1)
                self.resyncs += 1
                if nxt < 0:
                    pos = max(pos, len(buf) - 2)
                    break
                pos = nxt
                continue
            sid = buf[pos + 3]
            if sid == _PACK:
                if len(buf) - pos < 14:
                    break
                if buf[pos + 4] >> 6 != 0x1:  # MPEG-1 pack headers are 12 bytes; GB sends MPEG-2 only
                    pos += 4
                    self.resyncs += 1
                    continue
                pos += 14 + (buf[pos + 13] & 0x07)
                continue
            if sid == _END:
                pos += 4
                continue
            if sid < 0xB9:  # an elementary-stream start code inside garbage
                pos += 3
                self.resyncs += 1
                continue
            if len(buf) - pos < 6:
                break
            length = int.from_bytes(buf[pos + 4 : pos + 6], "big")
            end = pos + 6 + length
            if len(buf) < end:
                break
            body = bytes(buf[pos + 6 : end])
            pos = end
            if sid == _PSM:
                self._stream_map(body)
            elif 0xE0 <= sid <= 0xEF:
                yield from self._video(body)
            elif sid != _SYSTEM:
                self.other_streams += 1
        del buf[:pos]

    def flush(self) -> Iterator[Frame]:
        """Finish the pending frame (its last byte has come)."""
        if self._pending and self._pending_pts is not None:
            yield Frame(self.codec, self._pending_pts, bytes(self._pending))
        self._pending.clear()
        self._pending_pts = None

    def _stream_map(self, body: bytes) -> None:
        if len(body) < 6:
            return
        info_len = int.from_bytes(body[2:4], "big")
        at = 4 + info_len
        if len(body) < at + 2:
            return
        map_len = int.from_bytes(body[at : at + 2], "big")
        at += 2
        end = min(at + map_len, len(body))
        while at + 4 <= end:
            stype, esid = body[at], body[at + 1]
            if 0xE0 <= esid <= 0xEF and stype in STREAM_TYPES:
                self.codec = STREAM_TYPES[stype]
                return
            at += 4 + int.from_bytes(body[at + 2 : at + 4], "big")

    def _video(self, body: bytes) -> Iterator[Frame]:
        if len(body) < 3 or body[0] >> 6 != 0x2:  # not an MPEG-2 PES header
            self.dropped_frames += 1
            return
        flags, hlen = body[1], body[2]
        if len(body) < 3 + hlen:
            self.dropped_frames += 1
            return
        pts = _read_ts(body[3:8]) if flags & 0x80 and hlen >= 5 else None
        payload = body[3 + hlen :]
        if pts is not None and pts != self._pending_pts:
            yield from self.flush()
            self._pending_pts = pts
        if self._pending_pts is None:  # data before any PTS: nothing to time it by
            self.dropped_frames += 1
            return
        if len(self._pending) + len(payload) > _MAX_FRAME:
            self.dropped_frames += 1
            self._pending.clear()
            self._pending_pts = None
            return
        self._pending += payload
