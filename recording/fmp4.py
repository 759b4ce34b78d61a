"""Reading the top-level structure of a fragmented MP4 file: where the init segment ends, which
fragments are complete (a crash can leave a torn last one), and cutting a torn tail off."""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["complete_length", "init_length", "top_level_boxes", "truncate_torn"]


def top_level_boxes(f: BinaryIO, size: int) -> Iterator[tuple[bytes, int, int]]:
    """(type, offset, length) of each top-level box that lies wholly inside the first ``size`` bytes."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        head = f.read(16)
        n, kind = struct.unpack(">I4s", head[:8])
        if n == 1 and len(head) >= 16:
            n = struct.unpack(">Q", head[8:16])[0]
        if n < 8 or pos + n > size:
            return
        yield kind, pos, n
        pos += n


def complete_length(path: Path) -> int:
    """Bytes up to the end of the last complete fragment (moof + mdat); 0 when not even the init
    segment (ftyp + moov) is whole."""
    size = path.stat().st_size
    good = 0
    with path.open("rb") as f:
        pending_moof = False
        for kind, off, n in top_level_boxes(f, size):
            if kind == b"moov":
                good = off + n
            elif kind == b"moof":
                pending_moof = True
            elif kind == b"mdat" and pending_moof:
                pending_moof = False
                good = off + n
            elif kind in (b"mfra", b"free", b"styp", b"sidx") and not pending_moof and good:
                good = off + n
    return good


def init_length(path: Path) -> int:
    """Bytes of the init segment (ftyp + moov), 0 if it is not whole."""
    size = path.stat().st_size
    with path.open("rb") as f:
        for kind, off, n in top_level_boxes(f, size):
            if kind == b"moov":
                return off + n
    return 0


def truncate_torn(path: Path) -> int:
    """Cut a torn last fragment off (the gateway died while writing it); returns the bytes cut."""
    size = path.stat().st_size
    good = complete_length(path)
    if good < size:
        with path.open("r+b") as f:
            f.truncate(good)
            os.fsync(f.fileno())
    return size - good
